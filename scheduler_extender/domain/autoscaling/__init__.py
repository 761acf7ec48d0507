"""Replica arithmetic of the predictive autoscaler: forecast, reactive floor, budget.

Pure functions over plain values; the controller in ``service.autoscaler``
feeds them what it read from Kubernetes and Prometheus and writes back
what they decide.
"""
