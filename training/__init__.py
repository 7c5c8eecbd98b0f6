"""Offline training, evaluation and data adapters for the Kairos models.

Everything here reads events in the API schema (``kairos.customers.schemas.Event``), builds each customer's
aggregates with ``kairos.customers.aggregates.fold_events`` and computes features with ``kairos.models.features``:
the same code the score function runs.
"""
