// A scheduler extender that decides nothing: filter passes every node, prioritize
// scores every node 0, and bind posts the Binding kube-scheduler asked for.
//
// bench-e2e runs kube-scheduler with it as the floor of the extender protocol on
// the machine: what any extender costs (two JSON round trips on the serial
// scheduling path, a bind through a second process), whatever its language and
// policies. Standard library only, so it builds without the module proxy.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"time"
)

type filterArgs struct {
	NodeNames []string `json:"NodeNames"`
}

type filterResult struct {
	NodeNames   []string          `json:"NodeNames"`
	FailedNodes map[string]string `json:"FailedNodes"`
}

type hostPriority struct {
	Host  string `json:"Host"`
	Score int64  `json:"Score"`
}

type bindArgs struct {
	PodName      string `json:"PodName"`
	PodNamespace string `json:"PodNamespace"`
	PodUID       string `json:"PodUID"`
	Node         string `json:"Node"`
}

type bindResult struct {
	Error string `json:"Error,omitempty"`
}

type binder struct {
	server string
	client *http.Client
}

func (b *binder) bind(args bindArgs) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": "v1",
		"kind":       "Binding",
		"metadata":   map[string]any{"name": args.PodName, "namespace": args.PodNamespace, "uid": args.PodUID},
		"target":     map[string]any{"apiVersion": "v1", "kind": "Node", "name": args.Node},
	})
	if err != nil {
		return err
	}
	path := fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/binding",
		b.server, url.PathEscape(args.PodNamespace), url.PathEscape(args.PodName))
	resp, err := b.client.Post(path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("binding %s/%s: HTTP %d: %s", args.PodNamespace, args.PodName, resp.StatusCode, detail)
	}
	return nil
}

func decode[T any](w http.ResponseWriter, r *http.Request) (T, bool) {
	var v T
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return v, false
	}
	return v, true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		log.Printf("writing the reply: %v", err)
	}
}

func newBinder(server, ca, cert, key string) (*binder, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", ca)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}},
		MaxIdleConnsPerHost: 64,
	}
	return &binder{server: server, client: &http.Client{Transport: transport, Timeout: 30 * time.Second}}, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	server := flag.String("server", "", "kube-apiserver URL")
	ca := flag.String("ca", "", "CA bundle of the API server")
	cert := flag.String("cert", "", "client certificate")
	key := flag.String("key", "", "client key")
	prefix := flag.String("prefix", "/", "URL prefix of the verbs")
	flag.Parse()

	b, err := newBinder(*server, *ca, *cert, *key)
	if err != nil {
		log.Fatalf("API server credentials: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+*prefix+"filter", func(w http.ResponseWriter, r *http.Request) {
		if args, ok := decode[filterArgs](w, r); ok {
			reply(w, filterResult{NodeNames: args.NodeNames, FailedNodes: map[string]string{}})
		}
	})
	mux.HandleFunc("POST "+*prefix+"prioritize", func(w http.ResponseWriter, r *http.Request) {
		if args, ok := decode[filterArgs](w, r); ok {
			scores := make([]hostPriority, len(args.NodeNames))
			for i, name := range args.NodeNames {
				scores[i] = hostPriority{Host: name}
			}
			reply(w, scores)
		}
	})
	mux.HandleFunc("POST "+*prefix+"bind", func(w http.ResponseWriter, r *http.Request) {
		if args, ok := decode[bindArgs](w, r); ok {
			result := bindResult{}
			if err := b.bind(args); err != nil {
				result.Error = err.Error()
			}
			reply(w, result)
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	log.Printf("no-op extender serving %sfilter, prioritize and bind on %s", *prefix, *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
