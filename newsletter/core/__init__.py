"""The leaf layer: errors, settings, the keyring, the database, text, time and topic helpers.

It imports nothing else of the project; everything else may import it.
"""

__all__: list[str] = []
