"""Who is calling: the key's merchant, role and actor."""

from __future__ import annotations

import strawberry

from schema.enums import Actor, Role
from storage import tables


@strawberry.type(description="A store using Bookbag; every ticket, ruleset and key belongs to one.")
class Merchant:
    id: strawberry.ID = strawberry.field(description="The merchant's id (`mer_…`).")
    name: str = strawberry.field(description="The store's display name.")
    slug: str = strawberry.field(description="The store's short name, unique across merchants.")

    @classmethod
    def from_model(cls, row: tables.Merchant) -> Merchant:
        return cls(id=strawberry.ID(row.id), name=row.name, slug=row.slug)


@strawberry.type(description="The caller, as derived from its API key (never from input).")
class Me:
    merchant: Merchant = strawberry.field(description="The merchant the API key belongs to.")
    role: Role = strawberry.field(
        description="The API key's role; it decides which operations the key may call."
    )
    actor: Actor | None = strawberry.field(description="The actor the rules see; null for viewer keys.")
    key_id: strawberry.ID | None = strawberry.field(
        description="The API key's id (null for a principal that is not an API key)."
    )
