"""Use cases of the extender: filter, prioritize, bind, explain.

They combine the pure domain with the cache and the binder through small
protocols, so the HTTP layer only translates wire shapes.
"""
