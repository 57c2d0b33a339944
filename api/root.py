"""The root types: every query and mutation, each backed by one thin resolver in ``resolvers/``."""

from __future__ import annotations

import strawberry

from resolvers import actions as a
from resolvers import admin as adm
from resolvers import classifier_models as cm
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
from schema.classifier_models import ClassifierModel, ClassifierModelPayload
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


@strawberry.type(description="The read operations. Every one is scoped to the merchant of the API key.")
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
    tickets: TicketConnection = strawberry.field(
        resolver=t.tickets,
        description="The merchant's tickets, filtered and sorted, one page at a time (Relay cursor connection).",
    )
    queue: Queue = strawberry.field(
        resolver=adm.queue,
        description="The live queue's figures now: per-stage counts, oldest open tickets, SLA breaches, time in stage.",
    )
    oldest_open_tickets: list[Ticket] = strawberry.field(
        resolver=adm.oldest_open_tickets, description="Open tickets, oldest first (at most 100)."
    )
    ruleset: ActiveRuleset = strawberry.field(
        resolver=r.ruleset, description="The active ruleset with its source."
    )
    ruleset_versions: list[RulesetVersion] = strawberry.field(
        resolver=r.ruleset_versions,
        description="Every published version of the merchant's ruleset, newest first.",
    )
    audit_log: list[AuditEvent] = strawberry.field(
        resolver=adm.audit_log,
        description="Audit entries, newest first: every change to a ticket, decision and administrative act.",
    )
    classifier_info: ClassifierInfo = strawberry.field(
        resolver=adm.classifier_info,
        description="The classifier model in use: its version, labels and evaluation figures.",
    )
    classifier_models: list[ClassifierModel] = strawberry.field(
        resolver=cm.classifier_models,
        description="Admin only: the merchant's own classifier models, newest first, with their figures.",
    )
    classifier_model: ClassifierModel | None = strawberry.field(
        resolver=cm.classifier_model, description="Admin only: one of the merchant's classifier models."
    )
    teams: list[Team] = strawberry.field(resolver=adm.teams, description="The merchant's teams.")
    agents: list[Agent] = strawberry.field(resolver=adm.agents, description="The merchant's agents.")
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


@strawberry.type(
    description="The write operations. Each runs in one transaction: a refused one changes nothing and answers `errors`."
)
class Mutation:
    create_ticket: CreateTicketPayload = strawberry.mutation(
        resolver=t.create_ticket_resolver,
        description="Create a ticket: classify, route by the active ruleset, set the SLA and assign. Idempotent with `idempotencyKey`.",
    )
    add_message: MessagePayload = strawberry.mutation(
        resolver=t.add_message, description="Post a message on a ticket; the author comes from the API key."
    )
    assign_ticket: TicketPayload = strawberry.mutation(
        resolver=t.assign_ticket, description="Give a ticket to an agent and/or a team."
    )
    update_ticket: TicketPayload = strawberry.mutation(
        resolver=t.update_ticket,
        description="Change a ticket's tags, customer or order fields (partner systems).",
    )
    transition_ticket: TicketPayload = strawberry.mutation(
        resolver=t.transition_ticket, description="Move a ticket along an edge of the ruleset's stage graph."
    )
    correct_classification: TicketPayload = strawberry.mutation(
        resolver=t.correct_classification,
        description="Correct a ticket's category or priority; kept as training data.",
    )
    request_action: RequestActionPayload = strawberry.mutation(
        resolver=a.request_action,
        description="Ask for an action on a ticket; the rules allow it, deny it, or send it for approval.",
    )
    approve_action: ActionPayload = strawberry.mutation(
        resolver=a.approve_action, description="Approve a request waiting for approval (approver roles only)."
    )
    reject_action: ActionPayload = strawberry.mutation(
        resolver=a.reject_action, description="Reject a request waiting for approval."
    )
    complete_action: ActionPayload = strawberry.mutation(
        resolver=a.complete_action,
        description="A partner system reports an EXECUTING external action's outcome (partner or admin key).",
    )
    validate_ruleset: ValidateRulesetPayload = strawberry.mutation(
        resolver=r.validate_ruleset, description="Check a ruleset source without publishing it."
    )
    test_ruleset: TestRulesetPayload = strawberry.mutation(
        resolver=r.test_ruleset, description="Run a draft's own tests without publishing it."
    )
    publish_ruleset: RulesetVersionPayload = strawberry.mutation(
        resolver=r.publish_ruleset,
        description="Validate, test and publish a ruleset source as the merchant's new active version.",
    )
    activate_ruleset_version: RulesetVersionPayload = strawberry.mutation(
        resolver=r.activate_ruleset_version,
        description="Make an earlier published version the active one (roll back).",
    )
    simulate: SimulatePayload = strawberry.mutation(
        resolver=r.simulate,
        description="Evaluate cases against a draft ruleset and the active one, side by side.",
    )
    backtest: BacktestPayload = strawberry.mutation(
        resolver=r.backtest,
        description="Replay recent tickets through a draft ruleset and report what would change.",
    )
    create_api_key: CreateApiKeyPayload = strawberry.mutation(
        resolver=adm.create_api_key, description="Create an API key; its secret is in the answer only."
    )
    revoke_api_key: RevokeApiKeyPayload = strawberry.mutation(
        resolver=adm.revoke_api_key, description="Revoke an API key at once, in every process."
    )
    forget_customer: ForgetCustomerPayload = strawberry.mutation(
        resolver=adm.forget_customer,
        description="Admin only: redact a customer's personal data (email, name, their tickets' subjects and "
        "bodies, messages) across the merchant's tickets, audit log, action requests and stored responses.",
    )
    create_team: TeamPayload = strawberry.mutation(resolver=adm.create_team, description="Create a team.")
    create_agent: AgentPayload = strawberry.mutation(
        resolver=adm.create_agent, description="Create an agent."
    )
    create_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=w.create_webhook_endpoint,
        description="Register a webhook endpoint; its signing secret is in the answer only.",
    )
    update_webhook_endpoint: WebhookEndpointPayload = strawberry.mutation(
        resolver=w.update_webhook_endpoint, description="Change a webhook endpoint."
    )
    rotate_webhook_secret: WebhookEndpointPayload = strawberry.mutation(
        resolver=w.rotate_webhook_secret, description="Give a webhook endpoint a new signing secret."
    )
    redeliver_webhook: WebhookDeliveryPayload = strawberry.mutation(
        resolver=w.redeliver_webhook, description="Send a delivery again."
    )
    ping_webhook_endpoint: WebhookPingPayload = strawberry.mutation(
        resolver=w.ping_webhook_endpoint,
        description="Send a signed test event to an endpoint and report the attempt.",
    )
    train_classifier_model: ClassifierModelPayload = strawberry.mutation(
        resolver=cm.train_classifier_model,
        description="Admin only: train a candidate model from the merchant's corrections, in the background.",
    )
    promote_classifier_model: ClassifierModelPayload = strawberry.mutation(
        resolver=cm.promote_classifier_model,
        description="Admin only: make a candidate the active model, if it passes the safety gate.",
    )
    rollback_classifier_model: ClassifierModelPayload = strawberry.mutation(
        resolver=cm.rollback_classifier_model,
        description="Admin only: go back to the model active before (in the end, the shipped one).",
    )
