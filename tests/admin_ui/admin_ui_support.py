"""Helpers for the admin UI's browser tests: the live server handle, the per-test merchant, signing in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{reason}; CI=true needs the browser tests to run")
    pytest.skip(reason)


@dataclass
class LiveServer:
    url: str
    database: Any
    services: Any

    def graphql(self, key: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


@dataclass
class Merchant:
    merchant_id: str
    name: str
    keys: dict[str, str] = field(default_factory=dict)


def sign_in(page: Any, key: str) -> None:
    page.goto("/admin/")
    page.get_by_test_id("api-key-input").fill(key)
    page.get_by_test_id("sign-in-button").click()
    page.get_by_test_id("merchant-name").wait_for(state="visible")
