"""One settings object, read from the environment (``BOOKBAG_*``, plus ``DATABASE_URL``) and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bookbag.cors import parse_origins
from bookbag.fast_paths import FastPathsMode


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKBAG_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("BOOKBAG_DATABASE_URL", "DATABASE_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    model_dir: Path | None = None  # None: the model shipped in classifier/
    confidence_threshold: float = 0.4
    # ISO 639-1 codes the `ticket.language` fact chooses from (classifier/language.py), comma-separated.
    languages: str = "en,es,de,fr,it,nl,pt,pl,sv,da"
    max_page_size: int = 100
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 2000
    max_body_bytes: int = 256 * 1024
    max_batch_operations: int = 5
    max_subscriptions_per_connection: int = 20
    # The static cost budget of one request (schema.cost); a batch's operations share it.
    max_query_cost: int = Field(default=20_000, ge=1)
    # How long one HTTP request may execute before it is answered with TIMEOUT (0: no deadline).
    request_timeout_seconds: float = Field(default=10.0, ge=0)
    scheduler_interval_seconds: float = 5.0
    queue_coalesce_seconds: float = 0.1
    queue_safety_check_seconds: float = 10.0
    run_migrations_on_start: bool = True
    auth_cache_seconds: float = 5.0
    db_read_threads: int = Field(default=2, ge=1, le=64)
    db_write_threads: int = Field(default=2, ge=1, le=64)
    max_group_commit: int = Field(default=32, ge=1, le=256)
    # Websockets (bookbag.ws.connections): open connections per API key and per merchant, and how long one
    # may stay open before the server closes it (clients reconnect and authenticate again).
    ws_max_connections_per_key: int = Field(default=50, ge=1)
    ws_max_connections_per_merchant: int = Field(default=200, ge=1)
    ws_max_lifetime_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Websocket operations a merchant may have set up per second (more wait their turn; 0: no pacing).
    ws_setups_per_merchant_per_second: float = Field(default=400.0, ge=0)
    # Websocket handshakes a client address may start per second (more wait, up to 5 s; 0: no pacing).
    ws_handshakes_per_address_per_second: float = Field(default=100.0, ge=0)
    # Rulesets (policy.RulesetLimits) and the compiled-ruleset caches of the policy engine.
    ruleset_max_source_bytes: int = Field(default=512 * 1024, ge=1)
    ruleset_max_yaml_nodes: int = Field(default=150_000, ge=1)
    ruleset_max_depth: int = Field(default=50, ge=1, le=200)
    ruleset_max_rules: int = Field(default=4_000, ge=1)
    regex_max_text_chars: int = Field(default=50_000, ge=1)
    regex_max_mem_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    policy_max_compiled: int = Field(default=64, ge=1)
    policy_max_drafts: int = Field(default=8, ge=1)
    # Fair share (runtime.fairness): request rates per API key and per merchant (token buckets), failed
    # authentications per client address, database units in flight per merchant, CPU-heavy ruleset work.
    rate_limit_key_per_second: float = Field(default=1000.0, gt=0)
    rate_limit_key_burst: int = Field(default=2000, ge=1)
    rate_limit_merchant_per_second: float = Field(default=2000.0, gt=0)
    rate_limit_merchant_burst: int = Field(default=4000, ge=1)
    failed_auth_per_second: float = Field(default=2.0, gt=0)
    failed_auth_burst: int = Field(default=30, ge=1)
    # A rate-limited HTTP answer is held until its retry hint has passed, at least the first and at most the
    # second (0, 0: at once): a client retrying at once cannot spin the server on refusals.
    rate_limit_hold_min_seconds: float = Field(default=0.25, ge=0, le=60)
    rate_limit_hold_seconds: float = Field(default=1.0, ge=0, le=60)
    db_units_per_merchant: int = Field(default=1, ge=1, le=64)
    heavy_per_merchant: int = Field(default=1, ge=1, le=16)
    heavy_queue_per_merchant: int = Field(default=4, ge=0, le=64)
    heavy_per_process: int = Field(default=2, ge=1, le=16)
    heavy_wait_seconds: float = Field(default=5.0, ge=0, le=300)
    # CPU-heavy ruleset work in worker processes (runtime.workers; heavy_per_process of them, started by
    # `bookbag serve`, else on first use) with a hard time limit per call; false: in server threads, no limit.
    heavy_in_processes: bool = True
    heavy_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Browser frontends on other origins that may call /graphql (bookbag.cors): comma-separated exact origins
    # scheme://host[:port]; `*` is refused. Websockets from a browser must come from one of them or the
    # server's own origin.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _canonical_cors_origins(cls, value: object) -> tuple[str, ...]:
        return parse_origins(value)

    # Webhooks (workflow.webhooks): the dispatcher `bookbag serve` runs, its time limit per attempt, its caps on
    # attempts in flight (per endpoint, per merchant, in all: one merchant's dead endpoint cannot hold the
    # others' slots), how long an endpoint may fail before it is disabled. `webhook_allow_private` lets
    # deliveries reach loopback, private and link-local addresses (local development and tests only).
    webhook_dispatcher: bool = True
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    webhook_max_in_flight: int = Field(default=128, ge=1, le=1024)
    webhook_max_in_flight_per_merchant: int = Field(default=16, ge=1, le=256)
    webhook_max_in_flight_per_endpoint: int = Field(default=8, ge=1, le=64)
    webhook_disable_after_hours: float = Field(default=24.0, gt=0)
    webhook_retry_scale: float = Field(default=1.0, gt=0, le=1)  # < 1 compresses the schedule (benchmarks)

    # auto: the fast paths leaning on library internals run when those libraries are at tested versions
    # (bookbag.fast_paths); off: always graphql-core's executor and the ASGI websocket send.
    fast_paths: FastPathsMode = "auto"

    # Observability (bookbag.metrics, bookbag.logs): /metrics off unless `metrics`; with `metrics_token` set a
    # scrape must send it as a bearer token (required in production). Per-merchant queue series only with
    # `metrics_per_merchant` (one label value per merchant). Logs as text lines or one JSON object per line.
    metrics: bool = False
    metrics_token: str | None = None
    metrics_per_merchant: bool = False
    metrics_max_operation_names: int = Field(default=100, ge=1, le=10_000)
    log_format: Literal["text", "json"] = "text"
    # Retention (workflow.tickets.lifecycle): the history of tickets closed this many days ago is deleted (0: kept for
    # ever), checked every `retention_interval_seconds`; decision records follow each merchant's own setting.
    retention_closed_days: int = Field(default=0, ge=0, le=36_500)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    # Full garbage collections at most once per this many seconds in a server process (bookbag.gc_pacing):
    # bounds how often one tenant's objects (e.g. thousands of subscriptions) can stall everyone. 0: Python's
    # own schedule.
    gc_full_collection_min_interval_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Graceful shutdown: how long in-flight requests may take to finish after SIGTERM (0: no limit).
    shutdown_timeout_seconds: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _metrics_protected_in_production(self) -> Settings:
        if self.metrics and self.is_production and not self.metrics_token:
            raise ValueError(
                "BOOKBAG_METRICS in production needs BOOKBAG_METRICS_TOKEN (a bearer token for /metrics)"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bookbag.sqlite3').resolve()}"
