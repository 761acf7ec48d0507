"""Kubernetes adapters: object schemas, the watch-fed cache, binding and eviction."""
