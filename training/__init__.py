"""Offline training, evaluation and data adapters for the Kairos models.

Everything here reads events in the API schema (``kairos.schemas.Event``), builds each customer's
aggregates with ``kairos.aggregates.fold_events`` and computes features with ``kairos.features``:
the same code the score function runs.
"""
