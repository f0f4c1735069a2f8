"""The readers' pages (signup, confirm, unsubscribe, preferences, archive) as a Starlette app."""

__all__: list[str] = []
