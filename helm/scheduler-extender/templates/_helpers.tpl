{{/*
Names. Kubernetes names of namespaced objects are at most 63 characters here so that the
"-<component>" suffixes still fit DNS labels.
*/}}
{{- define "scheduler-extender.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "scheduler-extender.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<component>": the name of a component's namespaced objects. Call with (list $ "extender"). */}}
{{- define "scheduler-extender.componentName" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%s" (include "scheduler-extender.fullname" $) (index . 1) }}
{{- end }}

{{/*
Cluster-scoped objects (ClusterRoles, ClusterRoleBindings) also carry the namespace: two releases of
the same name in different namespaces must not overwrite each other's.
*/}}
{{- define "scheduler-extender.clusterName" -}}
{{- $ := index . 0 -}}
{{- printf "%s:%s:%s" $.Release.Namespace (include "scheduler-extender.fullname" $) (index . 1) }}
{{- end }}

{{- define "scheduler-extender.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (list $ "component"). */}}
{{- define "scheduler-extender.labels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ include "scheduler-extender.chart" $ }}
{{ include "scheduler-extender.selectorLabels" . }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/part-of: scheduler-extender
{{- with $.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component. Call with (list $ "component"). */}}
{{- define "scheduler-extender.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "scheduler-extender.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* The ServiceAccount of a component. Call with (list $ "component"). */}}
{{- define "scheduler-extender.serviceAccountName" -}}
{{- $ := index . 0 -}}
{{- $sa := (index $.Values (index . 1)).serviceAccount }}
{{- if $sa.create }}
{{- default (include "scheduler-extender.componentName" .) $sa.name }}
{{- else }}
{{- required (printf "%s.serviceAccount.name is required when %s.serviceAccount.create is false" (index . 1) (index . 1)) $sa.name }}
{{- end }}
{{- end }}

{{/* The scheduler-extender image reference. */}}
{{- define "scheduler-extender.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The kube-scheduler image: by default the cluster's own version, with vendor suffixes
(v1.36.4-eks-xxxx, v1.36.4+k3s1) dropped, since upstream publishes plain vMAJOR.MINOR.PATCH tags.
*/}}
{{- define "scheduler-extender.schedulerImage" -}}
{{- $tag := .Values.scheduler.image.tag }}
{{- if not $tag }}
{{- $v := semver .Capabilities.KubeVersion.Version }}
{{- $tag = printf "v%d.%d.%d" $v.Major $v.Minor $v.Patch }}
{{- end }}
{{- printf "%s:%s" .Values.scheduler.image.repository $tag }}
{{- end }}

{{/* Whether the controller is deployed: it needs Prometheus for the request rates it forecasts. */}}
{{- define "scheduler-extender.controllerEnabled" -}}
{{- if and .Values.controller.enabled .Values.prometheus.url }}true{{ end }}
{{- end }}

{{/*
The headless Service of the extender containers' "metrics" port (/healthz, /readyz, /metrics), for the
ServiceMonitor and the helm test. The webhooks are not behind any Service: kube-scheduler calls the
extender of its own pod on loopback.
*/}}
{{- define "scheduler-extender.extenderServiceName" -}}
{{- include "scheduler-extender.componentName" (list . "extender") }}
{{- end }}

{{/* kube-scheduler's secure port (/healthz, /readyz, /metrics) in the scheduler pods. */}}
{{- define "scheduler-extender.schedulerSecurePort" -}}10259{{- end }}

{{/*
The URL prefix kube-scheduler calls: the extender container beside it, on loopback, plus
extender.urlPrefix. Also checks that the pod's three ports differ.
*/}}
{{- define "scheduler-extender.url" -}}
{{- $ports := list (int .Values.extender.port) (int .Values.extender.probePort) (int (include "scheduler-extender.schedulerSecurePort" .)) }}
{{- if ne (len (uniq $ports)) 3 }}
{{- fail (printf "extender.port (%d), extender.probePort (%d) and kube-scheduler's secure port (%s) share the scheduler pod's network: they must differ" (int .Values.extender.port) (int .Values.extender.probePort) (include "scheduler-extender.schedulerSecurePort" .)) }}
{{- end }}
{{- printf "http://127.0.0.1:%d/%s" (int .Values.extender.port) (trimPrefix "/" .Values.extender.urlPrefix) | trimSuffix "/" }}
{{- end }}

{{/*
Environment variables from a settings map: camelCase key -> <prefix>SNAKE_CASE, maps and lists as
JSON. Unset (null) settings are left to the service's defaults. Call with (dict "prefix" P "settings" M).
*/}}
{{- define "scheduler-extender.settingsEnv" -}}
{{- $prefix := .prefix }}
{{- range $key, $value := .settings }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ $prefix }}{{ $key | snakecase | upper }}
  value: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else }}{{ $value | toString | quote }}{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the extender and the controller find Prometheus (SCHEDULER_EXTENDER_PROMETHEUS__*). */}}
{{- define "scheduler-extender.prometheusEnv" -}}
{{- if .Values.prometheus.url }}
- name: SCHEDULER_EXTENDER_PROMETHEUS__URL
  value: {{ .Values.prometheus.url | quote }}
{{- include "scheduler-extender.settingsEnv" (dict "prefix" "SCHEDULER_EXTENDER_PROMETHEUS__" "settings" .Values.prometheus.settings) }}
{{- end }}
{{- end }}

{{/* Required anti-affinity or preferred, on the component's own pods, across nodes. Call with (list $ "component" mode). */}}
{{- define "scheduler-extender.podAntiAffinity" -}}
{{- $mode := index . 2 }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "scheduler-extender.selectorLabels" (list (index . 0) (index . 1)) | fromYaml)) }}
{{- if eq $mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else if eq $mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end }}
