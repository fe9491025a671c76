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
