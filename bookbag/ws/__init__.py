"""The websocket transport: graphql-transport-ws with the fan-out fast path, direct frame writes, and the
process's open connections."""
