"""Customers and ingest: events in, exactly-once aggregates, profiles and consent, erasure, the event archive."""
