"""One reconciler per kind: observe, plan (in ``sluice.engine``), act, write, announce.

Each reconciler reads what it needs from the API server and the cache, asks
its kind's pure ``plan`` function what to do, carries the plan out and writes
the status the plan computed. Decisions never interleave with API calls here:
when the outcome of an act changes the facts (a create refused), the pass
observes again and asks the plan again.
"""
