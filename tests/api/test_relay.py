"""Relay conventions (issue #13 item 6): object identification through ``Node``/``node(id:)`` and a complete
``PageInfo`` on the tickets connection."""

from __future__ import annotations

from collections.abc import Callable

from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Ticket { subject } ... on Team { name } ... on Agent { email } } }"""
PAGE = """query($after: String) { tickets(first: 2, after: $after) {
  edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"""
TEAM = 'mutation { createTeam(name: "Billing") { team { id } errors { code } } }'


async def test_node_fetches_each_type_by_its_id_and_nothing_of_another_merchant(
    api: Api, make_merchant: Callable[..., MerchantKeys]
) -> None:
    merchant, other = make_merchant(), make_merchant()
    ticket = (await create_ticket(api, merchant.keys["partner"], subject="Broken zip"))["ticket"]
    team = (await api.ok(TEAM, key=merchant.keys["admin"]))["createTeam"]["team"]
    viewer = merchant.keys["viewer"]
    found = (await api.ok(NODE, {"id": ticket["id"]}, key=viewer))["node"]
    assert found == {"__typename": "Ticket", "id": ticket["id"], "subject": "Broken zip"}
    found = (await api.ok(NODE, {"id": team["id"]}, key=viewer))["node"]
    assert found == {"__typename": "Team", "id": team["id"], "name": "Billing"}
    for unknown in ("tkt_0000", "nope", ""):
        assert (await api.ok(NODE, {"id": unknown}, key=viewer))["node"] is None
    # Another merchant's ids answer exactly like unknown ones.
    for foreign in (ticket["id"], team["id"]):
        assert (await api.ok(NODE, {"id": foreign}, key=other.keys["admin"]))["node"] is None


async def test_page_info_has_both_ends(api: Api, merchant: MerchantKeys) -> None:
    for n in range(3):
        await create_ticket(api, merchant.keys["partner"], subject=f"t{n}")
    viewer = merchant.keys["viewer"]
    first = (await api.ok(PAGE, {"after": None}, key=viewer))["tickets"]
    cursors = [edge["cursor"] for edge in first["edges"]]
    assert first["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": cursors[0],
        "endCursor": cursors[-1],
    }
    second = (await api.ok(PAGE, {"after": cursors[-1]}, key=viewer))["tickets"]
    assert len(second["edges"]) == 1
    assert second["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": second["edges"][0]["cursor"],
        "endCursor": second["edges"][0]["cursor"],
    }
