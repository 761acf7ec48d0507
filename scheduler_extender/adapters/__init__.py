"""Adapters: the edges where the domain meets Kubernetes, Prometheus and the clock."""
