"""Articles -> edition -> variant -> message.

Models, sources (files, feeds), editions, rendering, MIME templates and previews.
"""

__all__: list[str] = []
