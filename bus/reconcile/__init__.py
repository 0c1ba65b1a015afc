"""Reconciliation with the national axis: do the province's books agree with the axis'?

``lgsp reconcile axis [--date D]`` and a daily job (setting ``reconcile_at``) compare, for
one day in the bus's ``timezone``, what the bus sent through the axis with the axis'
per-recipient confirmations, and what the axis holds for the province with what the bus
recorded; statuses and documents the bus lacks are fetched through the poller's path.
Each run is kept (``reconcile_runs``, ``reconcile_mismatches``) and shown by
``lgsp reconcile show`` and ``GET /api/v1/reconciliations``. See engine.py for the rules.
"""
