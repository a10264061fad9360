"""Label and annotation keys Sluice puts on the objects it creates."""

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "sluice"
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
# A run started by an HMAC-signed event: the Trigger that received it.
TRIGGER = "sluice.dev/trigger"
# A run started by asset updates: its number among its pipeline's asset runs,
# and the asset sequences it consumed (JSON), so a pass that lost its status
# write finds what the run it made consumed.
ASSET_RUN = "sluice.dev/asset-run"
ASSET_SEQUENCES = "sluice.dev/asset-sequences"
# The updates an asset run started from (JSON): frozen in its status.triggeredBy.
TRIGGERED_BY = "sluice.dev/triggered-by"

# What status.pipelineName shows for a run with an inline pipelineSpec; not a
# valid label value, so such runs' objects carry no pipeline label.
INLINE_PIPELINE = "(inline)"
# The labels Sluice sets on task pods and reads back: a user's are refused.
OWN = frozenset({RUN, RUN_UID, TASK, ATTEMPT, INSTANCE, PIPELINE, MANAGED_BY})
