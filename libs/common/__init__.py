"""Shared building blocks: settings, errors, wire types, bus, metrics, logging.

Nothing here imports a service package; services depend on these contracts.
"""
