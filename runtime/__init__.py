"""The API's runtime, below both ``schema/`` and ``resolvers/``: the per-request context, the long-lived
runtime it points at, the request's DataLoaders and the resource guards (fair shares, worker processes)."""
