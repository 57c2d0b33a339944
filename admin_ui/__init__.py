"""The admin web UI served at ``/admin/``: a rule editor with simulation and a live queue dashboard.

Plain ES modules and CSS in ``static/`` (no build step, nothing from a CDN); the app talks to the
GraphQL API only (``POST /graphql`` and graphql-transport-ws subscriptions). ``create_app`` mounts
:func:`static_dir` with ``html=True``.
"""

from __future__ import annotations

from pathlib import Path


def static_dir() -> Path:
    """The directory holding ``index.html`` and the app's modules and styles."""
    return Path(__file__).resolve().parent / "static"
