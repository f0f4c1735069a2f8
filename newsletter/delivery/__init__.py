"""Message -> outbox -> SMTP.

The send engine, the outbox and its recovery, the journal, pacing, the SMTP pool,
DKIM and the local sink.
"""

__all__: list[str] = []
