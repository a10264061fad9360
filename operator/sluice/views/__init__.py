"""Pure readings of Sluice objects for people: what a run's tasks are doing,
in what order, for how long. Shared by the `kubectl sluice` plugin and any
other view (no I/O here, so they are unit-tested without a cluster).
"""
