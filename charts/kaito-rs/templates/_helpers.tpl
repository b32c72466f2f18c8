{{- define "kaito.name" -}}kaito-operator{{- end -}}
{{- define "kaito.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "kaito.labels" -}}
app.kubernetes.io/name: kaito-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "kaito.selector" -}}
app.kubernetes.io/name: kaito-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
