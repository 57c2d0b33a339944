"""Who is asking: merchants and their API keys, the principal a key resolves to, agents and teams."""
