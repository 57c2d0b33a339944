"""Which roles may call which operation: the API's explicit role table (the services check again)."""

from __future__ import annotations

from workflow.tenancy.principal import Role

ANY: frozenset[Role] | None = None
READERS = frozenset(Role)
TICKET_WORKERS = frozenset({Role.ADMIN, Role.AGENT, Role.AI})
TICKET_WRITERS = TICKET_WORKERS | {Role.PARTNER}
ASSIGNERS = TICKET_WORKERS
CORRECTORS = frozenset({Role.ADMIN, Role.AGENT})
ACTION_REQUESTERS = TICKET_WRITERS
ACTION_DECIDERS = frozenset(
    {Role.ADMIN, Role.AGENT, Role.AI, Role.PARTNER}
)  # the rule names who, checked by the service
ACTION_COMPLETERS = frozenset({Role.ADMIN, Role.PARTNER})  # partner systems report outcomes
ADMINS = frozenset({Role.ADMIN})
SIMULATORS = frozenset({Role.ADMIN, Role.AGENT, Role.VIEWER})
