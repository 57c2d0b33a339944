"""The queue through HTTP: oldest open tickets, the redirect that greets a new user, NOTE/SET_PRIORITY actions."""

from __future__ import annotations

from tests.api.conftest import Api, create_ticket
from tests.conftest import MerchantKeys

OLDEST = "query($n: Int!) { oldestOpenTickets(first: $n) { id stage } }"
REQUEST = """mutation($input: RequestActionInput!) {
  requestAction(input: $input) { action { status type } decision { effect } errors { code message field } } }"""


async def test_oldest_open_tickets_come_oldest_first_and_only_mine(
    api: Api, merchant: MerchantKeys, other_merchant: MerchantKeys
) -> None:
    first = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    second = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    await create_ticket(api, other_merchant.keys["partner"])
    data = await api.ok(OLDEST, {"n": 10}, key=merchant.keys["viewer"])
    assert [t["id"] for t in data["oldestOpenTickets"]] == [first, second]
    data = await api.ok(OLDEST, {"n": 1}, key=merchant.keys["viewer"])
    assert [t["id"] for t in data["oldestOpenTickets"]] == [first]
    refused = await api.raw(OLDEST, {"n": 1000}, key=merchant.keys["viewer"])
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_note_and_set_priority_are_action_types(api: Api, merchant: MerchantKeys) -> None:
    ticket = (await create_ticket(api, merchant.keys["partner"]))["ticket"]["id"]
    data = await api.ok(
        REQUEST,
        {"input": {"ticketId": ticket, "type": "SET_PRIORITY", "params": {"priority": "urgent"}}},
        key=merchant.keys["agent"],
    )
    assert data["requestAction"]["errors"] == []
    assert data["requestAction"]["action"]["type"] == "SET_PRIORITY"
    assert data["requestAction"]["decision"]["effect"] == "ALLOW"


async def test_root_redirects_to_the_admin_ui(api: Api) -> None:
    response = await api.client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/admin/"
