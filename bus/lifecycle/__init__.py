"""The document's life after delivery: recalls, updates and replacements linked to their
originals, the recall request (13) fanned out to every recipient, the business status of
each recipient, the status-feedback report the Government Office follows, and the
working-day deadlines each recipient is held to.

Transport state (queued, delivered, …) and business status (01…16) stay two state
machines; this package adds the one transport state that depends on business facts,
``withdrawn``: a delivery of a document that was revoked or replaced before it went out.
"""

from bus.lifecycle.links import Plan, plan_for

__all__ = ["Plan", "plan_for"]
