"""Registry service: providers, models, prices and routes."""
