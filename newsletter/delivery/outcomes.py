"""The one vocabulary of delivery: where a message to one recipient stands.

Every part speaks it: an SMTP attempt ends in one of the *result* states, the
outbox stores every state, and status, reports and the scheduler count them.
It follows anymail's normalised statuses (``queued``, ``sent``, ``deferred``,
``failed``/``rejected``, ``unknown``) rather than booleans::

    queued    written to the outbox, not yet tried (or reserved by a worker)
    sending   handed to a connection; the relay has not answered the payload yet
    sent      the relay answered 250 after the payload
    deferred  4xx, or a connection lost before the payload: retried later
    failed    5xx (a hard bounce when the relay refused the address): never retried
    unknown   lost after the payload was handed over: it may have arrived
    skipped   never sent: the reader already had every story of their copy lately

What comes back later (a bounce report, a complaint, an unsubscribe) changes
the *subscriber's* state (:class:`subscribers.model.SubscriberStatus`), not a delivery's.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["OPEN_STATES", "RESULT_STATES", "DeliveryStatus"]


class DeliveryStatus(StrEnum):
    """Where one (edition, recipient) delivery stands; see the module docstring."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


# Rows that still need work: an edition is sent when none of these remain.
OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED, DeliveryStatus.SENDING)

# What one SMTP attempt can end in.
RESULT_STATES = frozenset(
    {DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN}
)
