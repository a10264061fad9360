"""The read-only web dashboard: pipelines, runs (their DAG, timeline,
params, results, conditions and Events) and task logs, updated live.

Pages are HTML and SVG rendered on the server from the same views as
`kubectl sluice` (``sluice.views``), with a few lines of plain JavaScript
for live updates (server-sent events): no Node build, nothing to install in
a browser. It only reads: its RBAC has no write verb.
"""
