"""Composition root: settings, ``create_app(settings)`` and the ``bookbag`` command line.

Nothing here holds business logic; it wires ``workflow/``, ``policy/``, ``classifier/``, ``schema/``,
``resolvers/`` and ``admin_ui/`` together.
"""
