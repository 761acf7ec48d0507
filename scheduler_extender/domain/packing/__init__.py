"""Constraint-based packing: place pending pods by rearranging lower-priority ones.

``pack`` turns a cluster snapshot into a ``Plan``; ``check_plan`` verifies a
plan against the snapshot independently of the model; ``default_placement``
is the greedy, kube-scheduler-like baseline a plan is compared with.
"""
