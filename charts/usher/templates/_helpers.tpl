{{/* Names: the release name, prefixed with "usher-" unless it already says usher. */}}
{{- define "usher.fullname" -}}
{{- if contains "usher" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-usher" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "usher.controllerName" -}}
{{- printf "%s-controller" (include "usher.fullname" .) -}}
{{- end -}}

{{/* Where the accounts and usher-keys live, and nothing else: accounts.namespace, by default
     <release namespace>-accounts. */}}
{{- define "usher.accountsNamespace" -}}
{{- $ns := .Values.accounts.namespace | default (printf "%s-accounts" .Release.Namespace) -}}
{{- if eq $ns .Release.Namespace -}}
{{- fail "accounts.namespace must not be the release namespace: the auth server's Role there would reach Helm's release records and the webhook's TLS key; leave it empty for <release namespace>-accounts" -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* The ClusterRole the controller binds to itself in each organisation namespace. */}}
{{- define "usher.secretsRole" -}}
{{- printf "%s-secrets" (include "usher.controllerName" .) -}}
{{- end -}}

{{- define "usher.authName" -}}
{{- printf "%s-auth" (include "usher.fullname" .) -}}
{{- end -}}

{{- define "usher.webhookName" -}}
{{- printf "%s-webhook" (include "usher.fullname" .) -}}
{{- end -}}

{{- define "usher.labels" -}}
app.kubernetes.io/name: usher
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "usher.controllerSelector" -}}
app.kubernetes.io/name: usher
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "usher.authSelector" -}}
app.kubernetes.io/name: usher
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: auth
{{- end -}}

{{- define "usher.webhookSelector" -}}
app.kubernetes.io/name: usher
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/* The image: by digest when image.digest is set (repository@sha256:…), else by tag. */}}
{{- define "usher.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Every required value, checked at once: the one message names all that are missing. */}}
{{- define "usher.required" -}}
{{- $missing := list -}}
{{- if not .Values.publicUrl -}}
{{- $missing = append $missing "publicUrl (where people reach the auth server, such as https://usher.example.com)" -}}
{{- end -}}
{{- if not .Values.smtp.url -}}
{{- $missing = append $missing "smtp.url (the mail relay invitations go through, such as smtp://relay.example.com:587?tls=required)" -}}
{{- end -}}
{{- if and .Values.auth.trustedProxies (not .Values.networkPolicy.authFrom) -}}
{{- $missing = append $missing "networkPolicy.authFrom (auth.trustedProxies is set: name the ingress controller's pods as NetworkPolicy peers, so that no other pod reaches the auth server with an X-Forwarded-For of its choosing)" -}}
{{- end -}}
{{- if and .Values.auth.trustedProxies (not .Values.networkPolicy.enabled) -}}
{{- $missing = append $missing "networkPolicy.enabled: true (auth.trustedProxies is set: without the NetworkPolicy any pod could claim a trusted proxy's X-Forwarded-For)" -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "\n\nUsher needs these values:\n  - %s\nSet them with --set or a values file (charts/usher/ci/minimal-values.yaml is an example).\n" (join "\n  - " $missing)) -}}
{{- end -}}
{{- end -}}

{{/* checkov skips for deliberate exceptions, each with its reason. */}}
{{- define "usher.checkovSkips" -}}
{{- if not .Values.image.digest }}
checkov.io/skip1: "CKV_K8S_43=The image is pinned to the chart's appVersion tag; set image.digest to pin it by digest"
{{- end }}
{{- if ne .Values.image.pullPolicy "Always" }}
checkov.io/skip2: "CKV_K8S_15=Release images are immutable (a tag is never moved, a digest cannot be); pulling on every start would only add a registry dependency"
{{- end }}
{{- end -}}

{{/*
The Kubernetes API token, mounted only where the process needs it (all three watch the API):
automountServiceAccountToken is false everywhere, and this projected volume puts the same
files where client libraries look for them, with a short-lived, audience-bound token.
*/}}
{{- define "usher.apiTokenVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3607}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}
{{- end -}}

{{/* The audit spool (docs/audit.md): with a collector as the sink, an emptyDir per pod. */}}
{{- define "usher.auditSpooled" -}}
{{- if and .Values.audit.spool.enabled (hasPrefix "http" .Values.audit.sink) }}true{{ end -}}
{{- end -}}

{{- define "usher.apiTokenMount" -}}
- {name: kube-api-access, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
{{- end -}}

{{/* The restricted Pod Security Standard, for every pod and container of the chart. */}}
{{- define "usher.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "usher.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The webhook Service the API server calls. */}}
{{- define "usher.webhookClient" -}}
service:
  name: {{ .name }}
  namespace: {{ .ns }}
  path: /validate
{{- if .caBundle }}
caBundle: {{ .caBundle }}
{{- end }}
{{- end -}}

{{/* Egress rules of a pod: the API server (networkPolicy.apiServerTo) and DNS
     (networkPolicy.dnsTo), plus the SMTP relay (networkPolicy.smtpTo) when "smtp" is true.
     An empty peer list leaves that port open to every address. */}}
{{- define "usher.egress" -}}
{{- $np := .root.Values.networkPolicy -}}
- ports:
    - {port: 443, protocol: TCP}
    - {port: 6443, protocol: TCP}
  {{- with $np.apiServerTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
  {{- with $np.dnsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- if .smtp }}
- ports:
    - {port: {{ $np.smtpPort }}, protocol: TCP}
  {{- with $np.smtpTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
