{{/* Name of the chart, overridable. */}}
{{- define "aws-auth-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-based, at most 63 characters. */}}
{{- define "aws-auth-webhook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "aws-auth-webhook.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "aws-auth-webhook.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aws-auth-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aws-auth-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aws-auth-webhook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "aws-auth-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "aws-auth-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aws-auth-webhook.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The serving Certificate, for cert-manager.io/inject-ca-from. */}}
{{- define "aws-auth-webhook.certificate" -}}
{{ include "aws-auth-webhook.fullname" . }}-serving
{{- end -}}

{{/* Only aws-auth is ever sent: the namespace by selector, the name by CEL. */}}
{{- define "aws-auth-webhook.matchConditions" -}}
- name: only-the-guarded-configmap
  expression: '(request.operation == "DELETE" ? oldObject : object).metadata.name == {{ .Values.guardedConfigMap.name | quote }}'
{{- end -}}

{{/* The image, by digest when one is given. */}}
{{- define "aws-auth-webhook.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Seconds in a Go duration ("5m", "1h30m", "360h"), rounded down. */}}
{{- define "aws-auth-webhook.seconds" -}}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $n) (get $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- floor $total | int64 -}}
{{- end -}}

{{/* PromQL label matchers that pick this release's series: job and
namespace as the chart's ServiceMonitor sets them, unless overridden. */}}
{{- define "aws-auth-webhook.alertSelector" -}}
{{- default (printf "job=%q, namespace=%q" (include "aws-auth-webhook.fullname" .) .Release.Namespace) .Values.prometheusRule.selector -}}
{{- end -}}
