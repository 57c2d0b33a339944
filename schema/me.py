"""Who is calling: the key's merchant, role and actor."""

from __future__ import annotations

import strawberry

from schema.enums import Actor, Role
from storage import tables


@strawberry.type
class Merchant:
    id: strawberry.ID
    name: str
    slug: str

    @classmethod
    def from_model(cls, row: tables.Merchant) -> Merchant:
        return cls(id=strawberry.ID(row.id), name=row.name, slug=row.slug)


@strawberry.type(description="The caller, as derived from its API key (never from input).")
class Me:
    merchant: Merchant
    role: Role
    actor: Actor | None = strawberry.field(description="The actor the rules see; null for viewer keys.")
    key_id: strawberry.ID | None
