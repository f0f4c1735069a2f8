"""The subscriber list: model, store, CSV import/export, tokens and consent.

Usable as a library without the CLI; the delivery engine reads recipients from it.
"""

__all__: list[str] = []
