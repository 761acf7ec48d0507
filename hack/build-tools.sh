#!/usr/bin/env bash
# Builds the pinned control-plane tools (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok, helm, prometheus, promtool) from their Go modules into a per-user cache
# outside the repository, so every clone on this machine reuses them.
#
# Versions are pinned by the wrapper modules in hack/tools/<tool>/go.mod.
# Idempotent: a tool whose binaries are already in the cache is not rebuilt.
#
# Tool names as arguments (e.g. `hack/build-tools.sh helm prometheus`) build
# only those; no argument builds them all.
#
# --print-dirs prints "<tool> <version> <directory>" per tool and exits; the
# Python launcher (scheduler_extender/devcluster/tools.py) resolves the same
# directories and a unit test checks that both agree.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SCHEDULER_EXTENDER_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/scheduler-extender/bin}"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# tool dir -> main packages -> binaries
declare -A packages=(
  [kubernetes]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [prometheus]="github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool"
)
declare -A binaries=(
  [kubernetes]="kube-apiserver kube-controller-manager kube-scheduler"
  [etcd]="etcd"
  [kwok]="kwok"
  [helm]="helm"
  [prometheus]="prometheus promtool"
)
order=(etcd kwok helm prometheus kubernetes)

declare -A modules=(
  [kubernetes]="k8s.io/kubernetes"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok"
  [helm]="helm.sh/helm/v3"
  [prometheus]="github.com/prometheus/prometheus"
)
# Build tags per tool. Prometheus: only static and file service discovery (the
# cloud SDKs would triple the build), and no embedded web UI (its assets are built
# with npm, not part of the Go module): the HTTP API is all the tests and the demo use.
declare -A tags=(
  [prometheus]="remove_all_sd"
)

version_of() {  # the version the wrapper module pins for the tool's main module
  awk -v m="${modules[$1]}" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/tools/$1/go.mod"
}

ldflags_for() {
  local tool=$1 version=$2
  case $tool in
    kubernetes)
      local minor; minor=$(echo "$version" | cut -d. -f2)
      echo "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" ;;
    prometheus)  # module v0.316.0 is Prometheus 3.16.0
      local release; release=$(echo "$version" | sed -E 's/^v0\.([0-9]+)([0-9]{2})\.([0-9]+)$/\1.\2.\3/; s/^([0-9]+)\.0*([0-9])/\1.\2/')
      echo "-s -w -X github.com/prometheus/common/version.Version=$release" ;;
    *) echo "-s -w" ;;
  esac
}

if [[ ${1:-} == --print-dirs ]]; then
  for tool in "${order[@]}"; do
    version=$(version_of "$tool")
    echo "$tool $version $cache/$tool-$version"
  done
  exit 0
fi

if (($#)); then
  for tool in "$@"; do
    [[ -n ${modules[$tool]:-} ]] || { echo "error: unknown tool '$tool' (known: ${order[*]})" >&2; exit 2; }
  done
  order=("$@")
fi

if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.26.7) is needed to build the control-plane tools," >&2
  echo "       but 'go' is not on PATH. Install Go from https://go.dev/dl/ and re-run 'make tools'." >&2
  exit 1
fi

i=0
for tool in "${order[@]}"; do
  i=$((i + 1))
  version=$(version_of "$tool")
  out="$cache/$tool-$version"
  missing=0
  for b in ${binaries[$tool]}; do [[ -x "$out/$b" ]] || missing=1; done
  if [[ $missing == 0 ]]; then
    echo "[$i/${#order[@]}] $tool $version: cached in $out"
    continue
  fi
  case $tool in
    kubernetes) hint=" (the first build takes 15-30 min on 2 cores)" ;;
    prometheus) hint=" (the first build takes 10-15 min on 2 cores)" ;;
    *) hint="" ;;
  esac
  echo "[$i/${#order[@]}] $tool $version: building into $out$hint"
  start=$(date +%s)
  tmp="$out.tmp.$$"
  mkdir -p "$tmp"
  # shellcheck disable=SC2086
  (cd "$here/tools/$tool" && go build -v -trimpath -tags "${tags[$tool]:-}" -ldflags "$(ldflags_for "$tool" "$version")" -o "$tmp/" ${packages[$tool]} 2>&1) |
    awk -v tool="$tool" '{ n++; if (n % 100 == 0) { printf "    %s: %d packages compiled\n", tool, n; fflush() } } /^(#|.*\.go:[0-9]+)/ { print; fflush() }'
  status=${PIPESTATUS[0]}
  if [[ $status != 0 ]]; then
    rm -rf "$tmp"
    echo "error: building $tool $version failed (see the messages above)" >&2
    exit "$status"
  fi
  if [[ $tool == etcd ]]; then mv "$tmp/server" "$tmp/etcd"; fi  # the main package is the module root, named "server"
  rm -rf "$out" && mv "$tmp" "$out"
  echo "    $tool $version built in $(( $(date +%s) - start )) s"
done
echo "tools ready in $cache"
