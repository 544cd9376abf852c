{{- define "hookwire.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hookwire.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hookwire.serverSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "hookwire.agentSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "hookwire.image" -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "v%s" .Chart.AppVersion) .Values.image.tag) -}}
{{- end -}}

{{/* The headless Service that gives each server a stable DNS name. */}}
{{- define "hookwire.serverHeadless" -}}
{{- printf "%s-server" (include "hookwire.fullname" .) -}}
{{- end -}}

{{/* server-<i>.<headless>.<ns>.svc.<domain> */}}
{{- define "hookwire.serverHost" -}}
{{- $ctx := index . 0 -}}{{- $i := index . 1 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "hookwire.serverHeadless" $ctx) $i (include "hookwire.serverHeadless" $ctx) $ctx.Release.Namespace $ctx.Values.clusterDomain -}}
{{- end -}}

{{- define "hookwire.checkValues" -}}
{{- $n := int .Values.server.replicas -}}
{{- if or (lt $n 1) (eq (mod $n 2) 0) -}}
{{- fail (printf "server.replicas is %d: use 1, 3 or 5 (an even number of servers tolerates no more failures than one fewer)" $n) -}}
{{- end -}}
{{- if not .Values.server.masterKey.secretName -}}
{{- fail "server.masterKey.secretName is empty: name the Secret holding the master key (hookwire keygen)" -}}
{{- end -}}
{{- if and (gt $n 1) (not .Values.server.clusterTLS.secretName) -}}
{{- fail "server.clusterTLS.secretName is empty: servers talk to each other only over mutual TLS off loopback; create the Secret (docs/INSTALL.md) and name it" -}}
{{- end -}}
{{- if and (not .Values.server.apiTLS.secretName) (not .Values.server.insecureAllowPlaintext) -}}
{{- fail "server.apiTLS.secretName is empty: give the API a TLS Secret, or set server.insecureAllowPlaintext=true behind something that encrypts" -}}
{{- end -}}
{{- end -}}
