{{/*
The secondary scheduler's KubeSchedulerConfiguration. deploy/scheduler-config.yaml carries the same
extenders entry for the local control plane; tests/unit/chart/test_scheduler_config.py keeps the two
in agreement and feeds this one to the real kube-scheduler binary.
kube-scheduler calls the extender container of its own pod on loopback, in plain HTTP (the traffic
never leaves the pod). The extender binds, so its entry is never ignorable: kube-scheduler skips an
ignorable binder's error and binds the pod with its DefaultBinder, which would void the extender's
refusals. Not ignorable, an extender that is down or fails makes the GPU pod's attempt fail (a
FailedScheduling event names the extender's URL) and kube-scheduler retries it after its backoff.
kube-scheduler asks an extender with managedResources only about pods whose containers request or
limit one of them (HTTPExtender.IsInterested); a pod whose GPUs come from DRA ResourceClaims requests
none, so scheduler.extender.everyPod drops the list and every pod of the profile goes through it.
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
    ignorable: false
    {{- if not $ext.everyPod }}
    managedResources:
      {{- toYaml $ext.managedResources | nindent 6 }}
    {{- end }}
    enableHTTPS: false
{{- end }}
