{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The rules for what the operator reconciles: exactly the verbs its code uses. */}}
{{- define "sluice.reconcileRules" -}}
- apiGroups: ["sluice.dev"]
  resources: ["pipelines"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["sluice.dev"]
  resources: ["backfills"]
  verbs: ["get", "list", "watch"]
# Schedules and backfills create runs; schedules prune their history; a
# cancelled backfill cancels its runs (a patch of spec.cancelled).
- apiGroups: ["sluice.dev"]
  resources: ["pipelineruns"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: ["sluice.dev"]
  resources: ["pipelineruns/status", "pipelines/status", "backfills/status"]
  verbs: ["patch"]
# Assets: watched (an update wakes the Pipelines scheduled on it), created
# on a task's first update, and their status records each update.
- apiGroups: ["sluice.dev"]
  resources: ["assets"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["sluice.dev"]
  resources: ["assets/status"]
  verbs: ["patch"]
# Task pods carry blockOwnerDeletion on their owning run; clusters enforcing
# OwnerReferencesPermissionEnforcement require this.
- apiGroups: ["sluice.dev"]
  resources: ["pipelineruns/finalizers"]
  verbs: ["update"]
# One pod per task attempt: created, stopped (cancel, timeout), patched to
# release the tracking finalizer once the outcome is recorded, and read
# before an attempt whose pod the watch does not show is called lost.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# A run's workspace claim: created, and read when its name is already taken
# (an earlier pass's, or someone else's that must not be mounted).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["create", "get"]
# Events on runs and Pipelines; a repeated one is counted on the same Event
# (read back once after a restart, then patched).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
{{- end -}}

{{/* The admission webhook is served by cluster-wide installs only: a
watchNamespace install creates nothing cluster-wide. */}}
{{- define "sluice.webhookEnabled" -}}
{{- if and .Values.webhook.enabled (not .Values.watchNamespace) }}true{{ end }}
{{- end }}
