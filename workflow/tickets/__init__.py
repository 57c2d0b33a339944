"""The ticket domain's services: read and list, transitions, updates and assignment, messages, corrections; ingest (createTicket) and its group commit; facts, SLA, the queue, retention."""
