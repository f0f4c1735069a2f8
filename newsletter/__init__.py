"""Turn a newsroom's articles into an email digest and deliver it, exactly once, to subscribers.

The library is usable without the CLI; see the README for the pieces.
"""

from newsletter.core.errors import NewsletterError

__all__ = ["NewsletterError", "__version__"]

__version__ = "0.1.0"
