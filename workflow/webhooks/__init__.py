"""Webhooks for partner systems: signed HTTP deliveries of a merchant's ticket and action events.

- ``outbox``: which ``TicketEvent`` kinds are which webhook event types, and the outbox rows written in the
  transaction of the change (``workflow.live.bus.publish_after_commit`` calls it);
- ``endpoints``: what an admin does with endpoints (register, change, rotate the secret, the delivery log,
  redeliver);
- ``ssrf``: which addresses a delivery may reach, checked on the resolved address at send time;
- ``delivery``: one signed HTTP attempt (Standard Webhooks headers, timeout, capped response body);
- ``dispatcher``: claiming due deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), the retry schedule,
  disabling an endpoint that has failed for a day, and the loop ``bookbag serve`` runs.
"""
