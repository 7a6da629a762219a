{{/* Chart name, for the app.kubernetes.io/name label. */}}
{{- define "onus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the resources: fullnameOverride, else the release name when it contains the chart
name, else RELEASE-onus. Truncated to leave room for suffixes such as "-metrics".
*/}}
{{- define "onus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "onus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "onus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "onus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "onus.labels" -}}
helm.sh/chart: {{ include "onus.chart" . }}
{{ include "onus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: onus
{{- end }}

{{- define "onus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "onus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Service the API server calls (port 443 -> the webhook port). */}}
{{- define "onus.webhookServiceName" -}}
{{- include "onus.fullname" . }}
{{- end }}

{{- define "onus.metricsServiceName" -}}
{{- printf "%s-metrics" (include "onus.fullname" .) }}
{{- end }}

{{/* The ValidatingWebhookConfiguration (cluster-scoped). */}}
{{- define "onus.webhookConfigName" -}}
{{- include "onus.fullname" . }}
{{- end }}

{{/* The Secret holding the serving certificate, whatever the mode. */}}
{{- define "onus.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existingSecret" }}
{{- required "certificates.existingSecret.name is required when certificates.mode is existingSecret" .Values.certificates.existingSecret.name }}
{{- else }}
{{- printf "%s-webhook-tls" (include "onus.fullname" .) }}
{{- end }}
{{- end }}

{{- define "onus.certificateName" -}}
{{- printf "%s-webhook" (include "onus.fullname" .) }}
{{- end }}

{{/* repository:tag, or repository:tag@digest when a digest is given. */}}
{{- define "onus.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaces the webhook never judges: kube-system, the release namespace, then the values. */}}
{{- define "onus.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace }}
{{- range .Values.webhook.excludeNamespaces }}
{{- $ns = append $ns . }}
{{- end }}
{{- toJson (uniq $ns) }}
{{- end }}
