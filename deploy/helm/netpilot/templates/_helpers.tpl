{{/*
The facts rendered from the catalog (files/generated/workloads.yaml, `netpilot strimzi render`).
*/}}
{{- define "netpilot.facts" -}}
{{- .Files.Get "files/generated/workloads.yaml" -}}
{{- end -}}

{{/* "pop" for a PoP release, "core" for the central one. */}}
{{- define "netpilot.tier" -}}
{{- if .Values.pop.name -}}pop{{- else -}}core{{- end -}}
{{- end -}}

{{/* Suffix of every object name of a PoP release ("-ams1"); empty for the central one. */}}
{{- define "netpilot.suffix" -}}
{{- if .Values.pop.name -}}-{{ .Values.pop.name }}{{- end -}}
{{- end -}}

{{- define "netpilot.configName" -}}
netpilot-config{{ include "netpilot.suffix" . }}
{{- end -}}

{{- define "netpilot.inventoryConfigMap" -}}
{{- .Values.pop.inventory.configMap | default (printf "netpilot-inventory-%s" .Values.pop.name) -}}
{{- end -}}

{{- define "netpilot.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "netpilot.bootstrapHost" -}}
{{- .Values.kafka.bootstrapHost | default (printf "%s-kafka-bootstrap.%s.svc" .Values.kafka.cluster .Release.Namespace) -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "netpilot.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: netpilot
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
netpilot.io/tier: {{ include "netpilot.tier" . }}
{{- if .Values.pop.name }}
netpilot.io/pop: {{ .Values.pop.name }}
{{- end }}
{{- end -}}

{{/* Selector labels of one workload: call with (dict "root" $ "key" $key). */}}
{{- define "netpilot.selectorLabels" -}}
app.kubernetes.io/name: netpilot
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .key }}
{{- end -}}

{{- define "netpilot.labels" -}}
{{ include "netpilot.commonLabels" .root }}
{{ include "netpilot.selectorLabels" . }}
{{- end -}}

{{/*
The enabled workloads of this release's tier, as a YAML map key -> facts merged with the
component's values (call fromYaml on the result).
*/}}
{{- define "netpilot.workloads" -}}
{{- $facts := include "netpilot.facts" . | fromYaml -}}
{{- $tier := include "netpilot.tier" . -}}
{{- $out := dict -}}
{{- range $key, $w := $facts.workloads -}}
{{- $values := index $.Values.components $key | default dict -}}
{{- if and (eq $w.tier $tier) $values.enabled -}}
{{- $_ := set $out $key (merge (dict "values" $values) $w) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}
