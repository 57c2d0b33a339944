"""Merchants and their API keys.

A key is ``bb_<prefix>_<secret>``: 32 random bytes shown once. Only its SHA-256 is stored; a slow password
hash buys nothing for a 256-bit random secret and would cost every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session, col, select

from storage.tables import ApiKey, Merchant, QueueState, utcnow
from workflow.errors import DomainError, ErrorCode, invalid, not_found
from workflow.tenancy.principal import Principal, Role

# On PostgreSQL a revocation is announced to every process on this channel (payload: the key id), inside the
# revoking transaction, so only a committed revocation is heard.
KEYS_CHANNEL = "bookbag_keys"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_merchant(session: Session, *, name: str, slug: str | None = None) -> Merchant:
    name = name.strip()
    if not name or len(name) > 200:
        raise invalid("merchant name must be 1-200 characters", "name")
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63] or "merchant"
    if not _SLUG.match(slug):
        raise invalid("slug must be lowercase letters, digits and dashes (2-63 characters)", "slug")
    if session.exec(select(Merchant).where(Merchant.slug == slug)).first() is not None:
        raise DomainError(ErrorCode.CONFLICT, f"a merchant with slug {slug!r} exists", "slug")
    merchant = Merchant(name=name, slug=slug)
    session.add(merchant)
    session.flush()
    session.add(QueueState(merchant_id=merchant.id, version=0))
    session.flush()
    return merchant


def get_merchant(session: Session, merchant_id: str) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise not_found("merchant")
    return merchant


def get_merchant_by_slug(session: Session, slug: str) -> Merchant:
    merchant = session.exec(select(Merchant).where(Merchant.slug == slug)).first()
    if merchant is None:
        raise not_found(f"merchant {slug!r}", "merchant")
    return merchant


def create_api_key(session: Session, *, merchant_id: str, role: Role | str, name: str = "") -> IssuedKey:
    try:
        role = Role(role)
    except ValueError:
        raise invalid(f"unknown role {role!r}; one of: {', '.join(r.value for r in Role)}", "role") from None
    get_merchant(session, merchant_id)
    prefix = secrets.token_hex(4)
    secret = f"bb_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        merchant_id=merchant_id,
        name=name or f"{role.value} key",
        role=role.value,
        prefix=prefix,
        key_hash=hash_secret(secret),
    )
    session.add(key)
    session.flush()
    return IssuedKey(key=key, secret=secret)


def authenticate(session: Session, secret: str | None) -> Principal | None:
    """The principal for a presented key, or None for a missing, unknown or revoked key."""
    if not secret or len(secret) > 200:
        return None
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret))).first()
    if key is None or key.revoked_at is not None:
        return None
    return Principal(merchant_id=key.merchant_id, role=Role(key.role), key_id=key.id)


class PrincipalCache:
    """Keys that authenticated recently → their principal, for ``ttl_seconds``, so a client's requests skip
    the key lookup. Only valid keys are kept (at most ``max_entries``, least recently used out first). A key
    revoked through this process stops working at once (:meth:`forget_key`, which also tells the revocation
    listeners: open websockets of the key are closed); one revoked by another process stops at once on
    PostgreSQL (its ``KEYS_CHANNEL`` notification calls :meth:`forget_key` here), else within
    ``ttl_seconds``. ``ttl_seconds=0`` turns the cache off."""

    def __init__(
        self, ttl_seconds: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()
        self._revocation_listeners: list[Callable[[str], None]] = []

    def on_revoked(self, listener: Callable[[str], None]) -> None:
        """``listener(key_id)`` runs whenever a key is known to be revoked (keep it cheap, non-blocking)."""
        with self._lock:
            self._revocation_listeners.append(listener)

    def get(self, secret: str) -> Principal | None:
        if self.ttl_seconds <= 0:
            return None
        digest = hash_secret(secret)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry[1]

    def put(self, secret: str, principal: Principal) -> None:
        if self.ttl_seconds <= 0:
            return
        digest = hash_secret(secret)
        with self._lock:
            self._entries[digest] = (self._clock() + self.ttl_seconds, principal)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        """The key was revoked: drop it from the cache and tell the revocation listeners."""
        with self._lock:
            for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
                del self._entries[digest]
            listeners = list(self._revocation_listeners)
        for listener in listeners:
            listener(key_id)


def list_api_keys(session: Session, principal: Principal) -> list[ApiKey]:
    principal.require(Role.ADMIN)
    return list(
        session.exec(
            select(ApiKey).where(ApiKey.merchant_id == principal.merchant_id).order_by(col(ApiKey.created_at))
        )
    )


def find_api_key_id(session: Session, merchant_id: str, reference: str) -> str:
    """The id of the merchant's key named by its id or by its prefix (``bb_<prefix>_…``)."""
    reference = reference.strip()
    column = ApiKey.id if reference.startswith("key_") else ApiKey.prefix
    found = session.exec(
        select(ApiKey.id).where(ApiKey.merchant_id == merchant_id, column == reference)
    ).all()
    if not found:
        raise not_found(f"API key {reference!r}", "key")
    if len(found) > 1:  # prefixes are random 32-bit values: rare, but not unique
        raise invalid(f"prefix {reference!r} names {len(found)} keys; give the key id", "key")
    return str(found[0])


def revoke_api_key(session: Session, principal: Principal, key_id: str) -> ApiKey:
    principal.require(Role.ADMIN)
    key = session.get(ApiKey, key_id)
    if key is None or key.merchant_id != principal.merchant_id:
        raise not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_notify(:channel, :key)"), {"channel": KEYS_CHANNEL, "key": key.id}
            )
    return key


def revoked_key_ids(session: Session, key_ids: set[str]) -> set[str]:
    """Which of ``key_ids`` no longer authenticate (revoked, or gone)."""
    ids = sorted(key_ids)
    valid: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        valid.update(
            session.exec(
                select(ApiKey.id).where(col(ApiKey.id).in_(chunk), col(ApiKey.revoked_at).is_(None))
            ).all()
        )
    return key_ids - valid
