"""Sluice's Kubernetes API types (sluice.dev/v1alpha1) and their CRD schemas."""
