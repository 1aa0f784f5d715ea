{{/*
Names, labels and the values several templates compute the same way.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "huddle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: fullnameOverride, else "<release>-<chart>", or just the release name
when it already contains the chart name. Truncated so "<fullname>-<component>-..." still fits
the 63-character DNS label limit of Services.
*/}}
{{- define "huddle.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "huddle.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "huddle.labels" -}}
helm.sh/chart: {{ include "huddle.chart" . }}
app.kubernetes.io/name: {{ include "huddle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: huddle
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one component: call with (dict "root" $ "component" "gateway").
*/}}
{{- define "huddle.componentLabels" -}}
{{ include "huddle.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "huddle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "huddle.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The labels the operator puts on every session pod (crds/src/names.rs: APP_NAME_LABEL = APP_NAME,
APP_COMPONENT_LABEL = AGENT_COMPONENT, APP_MANAGED_BY_LABEL = OPERATOR_NAME). Fixed by the
operator, not by this chart's nameOverride.
*/}}
{{- define "huddle.sessionPodSelector" -}}
app.kubernetes.io/name: huddle
app.kubernetes.io/component: workspace-agent
app.kubernetes.io/managed-by: huddle-operator
{{- end }}

{{/* Object names of the components. */}}
{{- define "huddle.operator.fullname" -}}{{ include "huddle.fullname" . }}-operator{{- end }}
{{- define "huddle.gateway.fullname" -}}{{ include "huddle.fullname" . }}-gateway{{- end }}
{{- define "huddle.gateway.internalName" -}}{{ include "huddle.fullname" . }}-gateway-internal{{- end }}
{{- define "huddle.postgresql.fullname" -}}{{ include "huddle.fullname" . }}-postgresql{{- end }}
{{- define "huddle.redis.fullname" -}}{{ include "huddle.fullname" . }}-redis{{- end }}
{{- define "huddle.turn.fullname" -}}{{ include "huddle.fullname" . }}-turn{{- end }}
{{- define "huddle.secretName" -}}{{ include "huddle.fullname" . }}{{- end }}

{{- define "huddle.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "huddle.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "huddle.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "huddle.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "huddle.operator.leaseName" -}}
{{- default (include "huddle.operator.fullname" .) .Values.operator.leaseName }}
{{- end }}

{{/*
The session namespaces, one per line. Empty list: the release namespace. The binaries handle
one namespace each today, which the schema enforces (maxItems 1).
*/}}
{{- define "huddle.sessionNamespaces" -}}
{{- $namespaces := .Values.sessions.namespaces | default (list .Release.Namespace) }}
{{- range $namespaces }}
{{ . }}
{{- end }}
{{- end }}

{{/* The (first) session namespace: what the gateway and operator are configured with. */}}
{{- define "huddle.sessionNamespace" -}}
{{- first (.Values.sessions.namespaces | default (list .Release.Namespace)) }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: (dict "image" .Values.x.image "root" $). */}}
{{- define "huddle.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* The URL people open: <scheme>://<domain>[:<port>] (no trailing slash). */}}
{{- define "huddle.publicUrl" -}}
{{- $default := ternary 443 80 (eq .Values.publicScheme "https") }}
{{- if and .Values.publicPort (ne (int .Values.publicPort) $default) }}
{{- printf "%s://%s:%d" .Values.publicScheme .Values.domain (int .Values.publicPort) }}
{{- else }}
{{- printf "%s://%s" .Values.publicScheme .Values.domain }}
{{- end }}
{{- end }}

{{/* The gateway's container ports: the proxy and the internal server. */}}
{{- define "huddle.gateway.httpPort" -}}8000{{- end }}
{{- define "huddle.gateway.internalPort" -}}8001{{- end }}

{{/* In-cluster base URL of the gateway's internal server (API, snapshot store). */}}
{{- define "huddle.gateway.internalUrl" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "huddle.gateway.internalName" .) .Release.Namespace .Values.clusterDomain (int .Values.gateway.internalService.port) }}
{{- end }}

{{/* Whether the gateway gets a Redis URL at all. */}}
{{- define "huddle.redis.configured" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.externalRedis.existingSecret }}true{{- end }}
{{- end }}

{{/* The Secret and key holding the database URL. */}}
{{- define "huddle.databaseUrl.secretName" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret }}
{{- .Values.externalDatabase.existingSecret }}
{{- else }}
{{- include "huddle.secretName" . }}
{{- end }}
{{- end }}
{{- define "huddle.databaseUrl.secretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.externalDatabase.existingSecret }}
{{- .Values.externalDatabase.existingSecretKey }}
{{- else }}database-url{{- end }}
{{- end }}

{{/* The Secret and key holding the Redis URL. */}}
{{- define "huddle.redisUrl.secretName" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else }}
{{- include "huddle.secretName" . }}
{{- end }}
{{- end }}
{{- define "huddle.redisUrl.secretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretKey }}
{{- else }}redis-url{{- end }}
{{- end }}

{{/* The Secret and keys holding the master key and the admin token. */}}
{{- define "huddle.auth.secretName" -}}
{{- default (include "huddle.secretName" .) .Values.auth.existingSecret }}
{{- end }}
{{- define "huddle.auth.tokenKeyKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretTokenKeyKey }}{{ else }}token-key{{ end }}
{{- end }}
{{- define "huddle.auth.adminTokenKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretAdminTokenKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{/* The TURN server's host name browsers use. */}}
{{- define "huddle.turn.host" -}}
{{- default (printf "turn.%s" .Values.domain) .Values.turn.host }}
{{- end }}

{{/* A component's pod security context: (dict "root" $ "extra" .Values.gateway.podSecurityContext). */}}
{{- define "huddle.podSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .root.Values.podSecurityContext) (deepCopy (.extra | default dict))) }}
{{- end }}

{{/* A component's container security context: (dict "root" $ "extra" ...). */}}
{{- define "huddle.containerSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .root.Values.containerSecurityContext) (deepCopy (.extra | default dict))) }}
{{- end }}

{{/*
Pod anti-affinity spreading a component's replicas over nodes:
(dict "root" $ "component" "gateway" "mode" "soft").
*/}}
{{- define "huddle.podAntiAffinity" -}}
{{- if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "huddle.selectorLabels" (dict "root" .root "component" .component) | nindent 12 }}
{{- else if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "huddle.selectorLabels" (dict "root" .root "component" .component) | nindent 10 }}
{{- end }}
{{- end }}

{{/*
Checks that fail the render with a message naming the values to change; the schema covers
the rest.
*/}}
{{- define "huddle.validate" -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.url) (not .Values.externalDatabase.existingSecret) }}
{{- fail "externalDatabase.url or externalDatabase.existingSecret is required when postgresql.enabled=false: the gateway keeps sessions and snapshots in PostgreSQL" }}
{{- end }}
{{- if and (gt (int .Values.gateway.replicaCount) 1) (not (include "huddle.redis.configured" .)) }}
{{- fail (printf "gateway.replicaCount=%d needs Redis: set redis.enabled=true, externalRedis.url or externalRedis.existingSecret (without Redis a gateway serves alone)" (int .Values.gateway.replicaCount)) }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.parentRefs must name at least one Gateway when httpRoute.enabled=true" }}
{{- end }}
{{- if and .Values.turn.enabled (gt (int .Values.turn.relayPorts.min) (int .Values.turn.relayPorts.max)) }}
{{- fail (printf "turn.relayPorts.min (%d) must not exceed turn.relayPorts.max (%d)" (int .Values.turn.relayPorts.min) (int .Values.turn.relayPorts.max)) }}
{{- end }}
{{- if and .Values.turn.enabled (gt (sub (int .Values.turn.relayPorts.max) (int .Values.turn.relayPorts.min)) 199) }}
{{- fail "turn.relayPorts: at most 200 ports (each one is a Service port)" }}
{{- end }}
{{- end }}
