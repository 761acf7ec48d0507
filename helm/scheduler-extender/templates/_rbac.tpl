{{/*
A component's leader-election Role: create Leases (RBAC cannot scope create by name) and read and
renew only the component's own Lease, "<fullname>-<component>", and the further Leases its pod
elects on, "<fullname>-<name>" each. Call with (list $ "component") or (list $ "component" (list "name" ...)).
*/}}
{{- define "scheduler-extender.leaseRole" -}}
{{- $ := index . 0 -}}
{{- $leases := list (include "scheduler-extender.componentName" (list $ (index . 1))) }}
{{- if gt (len .) 2 }}
{{- range (index . 2) }}
{{- $leases = append $leases (include "scheduler-extender.componentName" (list $ .)) }}
{{- end }}
{{- end }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "scheduler-extender.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "scheduler-extender.labels" . | nindent 4 }}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    resourceNames: [{{ join ", " $leases }}]
    verbs: [get, update]
{{- end }}

{{/* Binds the component's ServiceAccount to its leader-election Role. Call with (list $ "component"). */}}
{{- define "scheduler-extender.leaseRoleBinding" -}}
{{- $ := index . 0 -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "scheduler-extender.componentName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "scheduler-extender.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "scheduler-extender.componentName" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "scheduler-extender.serviceAccountName" . }}
    namespace: {{ $.Release.Namespace }}
{{- end }}
