"""`kubectl sluice`: a kubectl plugin to see, start, cancel and rerun runs.

It speaks to the cluster with the official `kubernetes` client under the
user's own kubeconfig, never the operator's credentials, so it can do only
what its user may already do. Rendering (the DAG, the run table, the log
selection) is pure and lives apart from the calls that fetch what it shows.
"""
