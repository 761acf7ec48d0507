"""Node scoring: one module per policy, combined by configured weights."""
