"""The ticket domain: merchants and keys, agents and teams, tickets and messages, stages and transitions,
action requests and approvals, the audit log, queue metrics and the event bus.

Services are plain functions taking a session first; they never commit (the caller's unit of work does).
Every function that touches merchant data takes the merchant (via a :class:`~workflow.tenancy.principal.Principal`
or an explicit ``merchant_id``) and filters by it.
"""
