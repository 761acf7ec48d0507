"""The HTTP layer: the FastAPI app, its routes and the extender wire models."""
