"""The packer's edges: PodDisruptionBudget parsing, plan execution, the trigger loop, its metrics."""
