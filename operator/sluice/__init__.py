"""Sluice: a Kubernetes operator that runs data pipelines as DAGs of Jobs."""

__version__ = "0.1.0"
