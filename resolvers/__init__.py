"""Thin GraphQL resolvers: parse the input, call one ``workflow/`` (or ``policy/``/``classifier/``) service in
a worker thread inside one unit of work, and map the result to a ``schema/`` type with ``from_model``.

Nothing here holds business rules; role checks here are a second, explicit line of defence in front of the
services' own checks.
"""
