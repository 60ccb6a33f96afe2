{{/* Names and labels. */}}
{{- define "orderer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orderer.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "orderer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orderer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "orderer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: orderer
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "orderer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orderer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "orderer.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The orderer.yaml: chart defaults (values.yaml config) merged with the user's config. */}}
{{- define "orderer.config" -}}
{{- toYaml .Values.config -}}
{{- end -}}

{{/* Port of a "host:port" listen address: (include "orderer.port" "0.0.0.0:7050"). */}}
{{- define "orderer.port" -}}
{{- $parts := splitList ":" . -}}
{{- $port := last $parts | int -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "listen address %q has no valid port" .) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{- define "orderer.clusterPort" -}}{{ include "orderer.port" .Values.config.cluster.listen }}{{- end -}}
{{- define "orderer.apiPort" -}}{{ include "orderer.port" .Values.config.api.listen }}{{- end -}}
{{- define "orderer.adminPort" -}}{{ include "orderer.port" .Values.config.admin.listen }}{{- end -}}
{{- define "orderer.operationsPort" -}}{{ include "orderer.port" .Values.config.operations.listen }}{{- end -}}

{{/* n: consenters of the channel (channel.consenters, or replicas + offset when 0). */}}
{{- define "orderer.consenters" -}}
{{- $n := int .Values.channel.consenters -}}
{{- if eq $n 0 -}}
{{- $n = add (int .Values.replicas) (int .Values.consenterIdOffset) | int -}}
{{- end -}}
{{- if lt $n (add (int .Values.replicas) (int .Values.consenterIdOffset) | int) -}}
{{- fail (printf "channel.consenters (%d) is smaller than consenterIdOffset + replicas (%d): this release would run consenter ids the channel does not have" $n (add (int .Values.replicas) (int .Values.consenterIdOffset))) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* f = floor((n - 1) / 3): faulty consenters the channel tolerates. */}}
{{- define "orderer.f" -}}
{{- $n := include "orderer.consenters" . | int -}}
{{- div (sub $n 1) 3 -}}
{{- end -}}

{{/* quorum = ceil((n + f + 1) / 2). */}}
{{- define "orderer.quorum" -}}
{{- $n := include "orderer.consenters" . | int -}}
{{- $f := include "orderer.f" . | int -}}
{{- div (add $n $f 2) 2 -}}
{{- end -}}

{{/* PDB maxUnavailable: f, or the override when it is not above f. */}}
{{- define "orderer.maxUnavailable" -}}
{{- $f := include "orderer.f" . | int -}}
{{- $override := .Values.podDisruptionBudget.maxUnavailable -}}
{{- if kindIs "invalid" $override -}}
{{- $f -}}
{{- else if gt (int $override) $f -}}
{{- fail (printf "podDisruptionBudget.maxUnavailable=%d is above f=%d for %s consenters: more than f consenters down stops the channel" (int $override) $f (include "orderer.consenters" .)) -}}
{{- else -}}
{{- int $override -}}
{{- end -}}
{{- end -}}

{{/* Name of consenter $id's identity Secret: (include "orderer.identitySecret" (list $ $id)). */}}
{{- define "orderer.identitySecret" -}}
{{- $root := index . 0 -}}
{{- $id := index . 1 | toString -}}
{{- $root.Values.identity.secretNamePattern | replace "{id}" $id | replace "{fullname}" (include "orderer.fullname" $root) -}}
{{- end -}}

{{- define "orderer.tlsSecret" -}}
{{- $root := index . 0 -}}
{{- printf "%s-tls-%v" (include "orderer.fullname" $root) (index . 1) -}}
{{- end -}}

{{- define "orderer.headless" -}}
{{- printf "%s-headless" (include "orderer.fullname" .) -}}
{{- end -}}

{{- define "orderer.genesisEnabled" -}}
{{- if or .Values.genesis.configMap .Values.genesis.secret .Values.genesis.blocks -}}true{{- end -}}
{{- end -}}

{{/* Checks of values the schema cannot express. */}}
{{- define "orderer.validate" -}}
{{- $id := "/run/orderer/identity/" -}}
{{- range $key := list "msp_dir" "tls_dir" "mac_key_file" -}}
{{- if not (hasPrefix $id (index $.Values.config.node $key | toString)) -}}
{{- fail (printf "config.node.%s must be under %s (the identity volume)" $key $id) -}}
{{- end -}}
{{- end -}}
{{- $sources := 0 -}}
{{- range $s := list .Values.genesis.configMap .Values.genesis.secret .Values.genesis.blocks -}}
{{- if $s }}{{ $sources = add1 $sources }}{{ end -}}
{{- end -}}
{{- if gt $sources 1 -}}
{{- fail "set only one of genesis.configMap, genesis.secret, genesis.blocks" -}}
{{- end -}}
{{- if and .Values.certManager.enabled (not .Values.certManager.issuerRef.name) -}}
{{- fail "certManager.enabled needs certManager.issuerRef.name (an Issuer backed by your organisation's TLS CA)" -}}
{{- end -}}
{{- $_ := include "orderer.maxUnavailable" . -}}
{{- end -}}

{{/* Environment the entrypoint needs to derive the consenter id. */}}
{{- define "orderer.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CONSENTER_ID_OFFSET
  value: {{ .Values.consenterIdOffset | quote }}
{{- end -}}

{{- define "orderer.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The four ports of a Service. */}}
{{- define "orderer.servicePorts" -}}
- name: cluster
  port: {{ include "orderer.clusterPort" . }}
  targetPort: cluster
- name: api
  port: {{ include "orderer.apiPort" . }}
  targetPort: api
- name: admin
  port: {{ include "orderer.adminPort" . }}
  targetPort: admin
- name: operations
  port: {{ include "orderer.operationsPort" . }}
  targetPort: operations
{{- end -}}
