{{/* fullname: the release name, or <release>-sandboxmesh when it does not contain the chart name. */}}
{{- define "sandboxmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* labels of every object; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "sandboxmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: sandboxmesh
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "sandboxmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image of a component; call with (dict "ctx" $ "name" "operator"). */}}
{{- define "sandboxmesh.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{- define "sandboxmesh.operatorService" -}}
{{- printf "%s-operator" (include "sandboxmesh.fullname" .) -}}
{{- end -}}

{{- define "sandboxmesh.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "sandboxmesh.fullname" .) -}}
{{- end -}}

{{/*
webhookCert: the Helm-generated webhook CA and serving certificate as JSON {"crt","key","ca"} (base64 PEM):
the existing Secret's when there is one (upgrades keep them), else generated. Generated once per render and
remembered in .Values, so that the Secret, the caBundle and the operator's checksum annotation agree.
*/}}
{{- define "sandboxmesh.webhookCert" -}}
{{- if not (hasKey .Values "_webhookCert") -}}
{{- $svc := include "sandboxmesh.operatorService" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "sandboxmesh.webhookSecret" .) -}}
{{- $c := dict -}}
{{- if and $existing (index ($existing.data | default dict) "ca.crt") -}}
{{- $c = dict "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") "ca" (index $existing.data "ca.crt") -}}
{{- else -}}
{{- $dns := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $ca := genCA (printf "%s-webhook-ca" (include "sandboxmesh.fullname" .)) 3650 -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc .Release.Namespace) nil $dns 3650 $ca -}}
{{- $c = dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "_webhookCert" $c -}}
{{- end -}}
{{- index .Values "_webhookCert" | toJson -}}
{{- end -}}

{{- define "sandboxmesh.agentSecret" -}}
{{- default (printf "%s-agent" (include "sandboxmesh.fullname" .)) .Values.agent.existingSecret -}}
{{- end -}}

{{- define "sandboxmesh.controlplaneSecret" -}}
{{- default (printf "%s-controlplane" (include "sandboxmesh.fullname" .)) .Values.controlplane.existingSecret -}}
{{- end -}}

{{/* restricted pod and container security contexts (all our images run as 65532). */}}
{{- define "sandboxmesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sandboxmesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "sandboxmesh.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
