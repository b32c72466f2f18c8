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
{{- /* "true" when the NVIDIA device plugin DaemonSet is installed: nvidiaDevicePlugin.enabled
       true/false, or "auto" (default) = on unless the nodes are the user's own (byo), whose
       cluster usually runs its own device plugin or the GPU Operator already. */ -}}
{{- define "kaito.devicePluginEnabled" -}}
{{- $v := .Values.nvidiaDevicePlugin.enabled -}}
{{- if kindIs "bool" $v -}}
{{- if $v }}true{{ end -}}
{{- else if ne .Values.nodeProvisioner "byo" -}}
true
{{- end -}}
{{- end -}}
