"""Ledger service: usage events in, usage, cost and spend queries out."""
