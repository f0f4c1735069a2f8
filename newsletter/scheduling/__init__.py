"""When to send: pure next-run timing, the schedule store, claims, the scheduler."""

__all__: list[str] = []
