"""The domain: pure scheduling logic.

Nothing under this package performs I/O or imports a web framework, the
Kubernetes client or an HTTP library (enforced by the import-linter contracts
in pyproject.toml). Adapters turn Kubernetes objects into these types.
"""
