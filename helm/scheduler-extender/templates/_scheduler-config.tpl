{{/*
The secondary scheduler's KubeSchedulerConfiguration. deploy/scheduler-config.yaml carries the same
extenders entry for the local control plane; tests/unit/chart/test_scheduler_config.py keeps the two
in agreement and feeds this one to the real kube-scheduler binary.
*/}}
{{- define "scheduler-extender.schedulerConfig" -}}
{{- $ext := .Values.scheduler.extender -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: {{ .Values.scheduler.leaderElection.enabled }}
  resourceLock: leases
  resourceName: {{ include "scheduler-extender.componentName" (list . "scheduler") }}
  resourceNamespace: {{ .Release.Namespace }}
  leaseDuration: {{ .Values.scheduler.leaderElection.leaseDuration }}
  renewDeadline: {{ .Values.scheduler.leaderElection.renewDeadline }}
  retryPeriod: {{ .Values.scheduler.leaderElection.retryPeriod }}
percentageOfNodesToScore: {{ .Values.scheduler.percentageOfNodesToScore }}
profiles:
  - schedulerName: {{ .Values.schedulerName }}
extenders:
  - urlPrefix: {{ include "scheduler-extender.url" . }}
    filterVerb: filter
    prioritizeVerb: prioritize
    bindVerb: bind
    preemptVerb: preempt
    weight: {{ $ext.weight }}
    httpTimeout: {{ $ext.httpTimeout }}
    nodeCacheCapable: {{ $ext.nodeCacheCapable }}
    ignorable: {{ $ext.ignorable }}
    managedResources:
      {{- toYaml $ext.managedResources | nindent 6 }}
    enableHTTPS: {{ .Values.tls.enabled }}
    {{- if .Values.tls.enabled }}
    tlsConfig:
      serverName: {{ include "scheduler-extender.serviceHost" . }}
      caFile: {{ include "scheduler-extender.tlsDir" . }}/ca.crt
      {{- if .Values.tls.clientAuth.enabled }}
      certFile: {{ include "scheduler-extender.clientTlsDir" . }}/tls.crt
      keyFile: {{ include "scheduler-extender.clientTlsDir" . }}/tls.key
      {{- end }}
    {{- end }}
{{- end }}
