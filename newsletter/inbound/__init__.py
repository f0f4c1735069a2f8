"""Bounces, complaints and mailed unsubscribes read from a Maildir, acted on with evidence only."""

__all__: list[str] = []
