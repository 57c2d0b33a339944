"""Live updates: the in-process event bus, the per-merchant queue and ticket-event hubs that websockets fan out from, and LISTEN/NOTIFY across processes."""
