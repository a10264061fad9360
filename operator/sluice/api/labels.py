"""Label and annotation keys Sluice puts on the objects it creates."""

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "sluice"
# Sluice finds and tells its pods apart by the labels under this prefix: a user's are refused.
PREFIX = "sluice.dev/"
PIPELINE = "sluice.dev/pipeline"
RUN = "sluice.dev/run"
RUN_UID = "sluice.dev/run-uid"
TASK = "sluice.dev/task"
ATTEMPT = "sluice.dev/attempt"
INSTANCE = "sluice.dev/instance"
SCHEDULED_BY = "sluice.dev/scheduled-by"
SCHEDULED_TIME = "sluice.dev/scheduled-time"
SCHEDULED_DATE = "sluice.dev/scheduled-date"
BACKFILL = "sluice.dev/backfill"
BACKFILL_UID = "sluice.dev/backfill-uid"

# What status.pipelineName shows for a run with an inline pipelineSpec; not a
# valid label value, so such runs' objects carry no pipeline label.
INLINE_PIPELINE = "(inline)"
