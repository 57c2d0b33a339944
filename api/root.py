"""The root types: every query and mutation, each backed by one thin resolver in ``resolvers/``."""

from __future__ import annotations

import strawberry

from resolvers import actions as a
from resolvers import admin as adm
from resolvers import reports as rep
from resolvers import rulesets as r
from resolvers import tickets as t
from resolvers import webhooks as w
from schema.actions import ActionRequestConnection, Decision
from schema.admin import (
    ApiKey,
    AuditEvent,
    ClassifierInfo,
    CreateApiKeyPayload,
    ForgetCustomerPayload,
    RevokeApiKeyPayload,
)
from schema.common import Node
from schema.me import Me
from schema.payloads import (
    ActionPayload,
    AgentPayload,
    CreateTicketPayload,
    MessagePayload,
    RequestActionPayload,
    TeamPayload,
    TicketPayload,
)
from schema.queue import Queue
from schema.reports import Report
from schema.rulesets import (
    ActiveRuleset,
    BacktestPayload,
    RulesetVersion,
    RulesetVersionPayload,
    SimulatePayload,
    TestRulesetPayload,
    ValidateRulesetPayload,
)
from schema.tickets import Agent, Team, Ticket, TicketConnection
from schema.webhooks import (
    WebhookDelivery,
    WebhookDeliveryPayload,
    WebhookEndpoint,
    WebhookEndpointPayload,
    WebhookPingPayload,
)


@strawberry.type
class Query:
    me: Me = strawberry.field(resolver=t.me, description="The caller: merchant, role, actor.")
    ticket: Ticket | None = strawberry.field(
        resolver=t.ticket,
        description="A ticket of the caller's merchant, or null (also for other merchants' ids).",
    )
    node: Node | None = strawberry.field(
        resolver=t.node,
        description="A ticket, team or agent by its id (Relay's object identification); null when unknown.",
    )
    tickets: TicketConnection = strawberry.field(resolver=t.tickets)
    queue: Queue = strawberry.field(resolver=adm.queue)
    oldest_open_tickets: list[Ticket] = strawberry.field(
        resolver=adm.oldest_open_tickets, description="Open tickets, oldest first (at most 100)."
    )
    ruleset: ActiveRuleset = strawberry.field(
        resolver=r.ruleset, description="The active ruleset with its source."
    )
    ruleset_versions: list[RulesetVersion] = strawberry.field(resolver=r.ruleset_versions)
    audit_log: list[AuditEvent] = strawberry.field(resolver=adm.audit_log)
    classifier_info: ClassifierInfo = strawberry.field(resolver=adm.classifier_info)
    teams: list[Team] = strawberry.field(resolver=adm.teams)
    agents: list[Agent] = strawberry.field(resolver=adm.agents)
    api_keys: list[ApiKey] = strawberry.field(resolver=adm.api_keys, description="Admin only.")
    pending_actions: ActionRequestConnection = strawberry.field(
        resolver=a.pending_actions,
        description="The approval inbox: requests waiting for a decision the caller's role may take, oldest "
        "first (admin, agent, ai and partner keys; a rule's `approvers` names the roles).",
    )
    preview_action: Decision = strawberry.field(
        resolver=a.preview_action,
        description="The decision `requestAction` would get for the caller now (a dry run: nothing is "
        "recorded or done).",
    )
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=w.webhook_endpoints, description="Admin only."
    )
    webhook_deliveries: list[WebhookDelivery] = strawberry.field(
        resolver=w.webhook_deliveries, description="The delivery log, newest first. Admin only."
    )
    webhook_event_types: list[str] = strawberry.field(
        resolver=w.webhook_event_types, description="The event types an endpoint may subscribe to."
    )
    report: Report = strawberry.field(
        resolver=rep.report,
        description="Volume, backlog, stage and SLA times, escalations, AI actions and corrections over a "
        "period, from maintained roll-ups.",
    )


@strawberry.type
class Mutation:
    create_ticket: CreateTicketPayload = strawberry.mutation(resolver=t.create_ticket_resolver)
    add_message: MessagePayload = strawberry.mutation(resolver=t.add_message)
    assign_ticket: TicketPayload = strawberry.mutation(resolver=t.assign_ticket)
    update_ticket: TicketPayload = strawberry.mutation(resolver=t.update_ticket)
    transition_ticket: TicketPayload = strawberry.mutation(resolver=t.transition_ticket)
    correct_classification: TicketPayload = strawberry.mutation(resolver=t.correct_classification)
    request_action: RequestActionPayload = strawberry.mutation(resolver=a.request_action)
    approve_action: ActionPayload = strawberry.mutation(resolver=a.approve_action)
    reject_action: ActionPayload = strawberry.mutation(resolver=a.reject_action)
    complete_action: ActionPayload = strawberry.mutation(
        resolver=a.complete_action,
        description="A partner system reports an EXECUTING external action's outcome (partner or admin key).",
    )
    validate_ruleset: ValidateRulesetPayload = strawberry.mutation(resolver=r.validate_ruleset)
    test_ruleset: TestRulesetPayload = strawberry.mutation(
        resolver=r.test_ruleset, description="Run a draft's own tests without publishing it."
    )
    publish_ruleset: RulesetVersionPayload = strawberry.mutation(resolver=r.publish_ruleset)
    activate_ruleset_version: RulesetVersionPayload = strawberry.mutation(resolver=r.activate_ruleset_version)
    simulate: SimulatePayload = strawberry.mutation(resolver=r.simulate)
    backtest: BacktestPayload = strawberry.mutation(resolver=r.backtest)
    create_api_key: CreateApiKeyPayload = strawberry.mutation(resolver=adm.create_api_key)
    revoke_api_key: RevokeApiKeyPayload = strawberry.mutation(resolver=adm.revoke_api_key)
    forget_customer: ForgetCustomerPayload = strawberry.mutation(
        resolver=adm.forget_customer,
        description="Admin only: redact a customer's personal data (email, name, their tickets' subjects and "
        "bodies, messages) across the merchant's tickets, audit log, action requests and stored responses.",
    )
    create_team: TeamPayload = strawberry.mutation(resolver=adm.create_team)
    create_agent: AgentPayload = strawberry.mutation(resolver=adm.create_agent)
    create_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(resolver=w.create_webhook_endpoint)
    update_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(resolver=w.update_webhook_endpoint)
    rotate_webhook_secret: WebhookEndpointPayload = strawberry.mutation(resolver=w.rotate_webhook_secret)
    redeliver_webhook: WebhookDeliveryPayload = strawberry.mutation(resolver=w.redeliver_webhook)
    ping_webhook_endpoint: WebhookPingPayload = strawberry.mutation(resolver=w.ping_webhook_endpoint)
