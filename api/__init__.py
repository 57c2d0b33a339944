"""The GraphQL API assembled above ``schema/`` (types) and ``resolvers/``: ``Query``, ``Mutation``,
``Subscription`` and the built schema with its request guard."""
