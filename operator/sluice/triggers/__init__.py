"""The triggers server: HMAC-signed HTTP events that start PipelineRuns."""
