"""Router service: the edge. OpenAI and Anthropic APIs, provider adapters,
routing, limits, metering."""
