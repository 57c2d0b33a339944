"""The root types: every query and mutation, each backed by one thin resolver in ``resolvers/``."""

from __future__ import annotations

import strawberry

from resolvers import actions as a
from resolvers import admin as adm
from resolvers import reports as rep
from resolvers import rulesets as r
from resolvers import tickets as t
from schema.admin import ApiKey, AuditEvent, ClassifierInfo, CreateApiKeyPayload, RevokeApiKeyPayload
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


@strawberry.type
class Query:
    me: Me = strawberry.field(resolver=t.me, description="The caller: merchant, role, actor.")
    ticket: Ticket | None = strawberry.field(
        resolver=t.ticket,
        description="A ticket of the caller's merchant, or null (also for other merchants' ids).",
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
    create_team: TeamPayload = strawberry.mutation(resolver=adm.create_team)
    create_agent: AgentPayload = strawberry.mutation(resolver=adm.create_agent)
