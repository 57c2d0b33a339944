"""The GraphQL schema: strawberry types, inputs, payloads and errors, assembled by :func:`api.build.build_schema`
and exported to ``schema/schema.graphql`` (``bookbag schema export``).

Types are built from domain rows with ``Type.from_model(...)``; nested fields load related rows through the
request's DataLoaders, never one query per row.
"""
