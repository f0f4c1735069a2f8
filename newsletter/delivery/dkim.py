"""DKIM signing with dkimpy: the signature is prepended and the bytes go out unchanged.

Both unsubscribe headers (``List-Unsubscribe`` and ``List-Unsubscribe-Post``)
are in the signed set, as RFC 8058 requires for one-click unsubscribe to be
trusted. Every signed header is *oversigned*: named once more than it occurs
(RFC 6376 section 8.15), so a second ``Subject``, ``Reply-To`` or
``List-Unsubscribe`` prepended on the way breaks the signature instead of
riding on it. Canonicalisation is relaxed/relaxed, which survives the harmless
rewrapping some relays do.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from newsletter.core.config import Settings
from newsletter.core.errors import ConfigError

__all__ = ["SIGNED_HEADERS", "DKIMSigner"]

SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"precedence",
)
# each name twice: the header (at most once in our messages) and the absence of another
_OVERSIGNED = [name for name in SIGNED_HEADERS for _ in range(2)]

_PROBE = (
    b"From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n"
    b"List-Unsubscribe: <https://example.com/u>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nprobe\r\n"
)


class DKIMSigner:
    """Signs finished message bytes for one domain and selector."""

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self._key = private_key

    @classmethod
    def from_settings(cls, settings: Settings) -> DKIMSigner | None:
        """The signer the settings describe, or ``None`` when DKIM is not configured.

        Raises :class:`ConfigError` (naming the setting or the key file) when the
        configuration is incomplete or the key cannot be read or used.
        """
        given = {
            "NEWSLETTER_DKIM_SELECTOR": settings.dkim_selector,
            "NEWSLETTER_DKIM_DOMAIN": settings.dkim_domain,
            "NEWSLETTER_DKIM_KEY_PATH": settings.dkim_key_path,
        }
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise ConfigError(f"DKIM is partly configured: set {', '.join(missing)}")
        path = Path(str(settings.dkim_key_path))
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"DKIM key {path}: cannot be read ({exc.strerror})") from None
        signer = cls(str(settings.dkim_selector), str(settings.dkim_domain), key)
        try:
            signer.sign(_PROBE)
        except (dkim.DKIMException, ValueError, IndexError, KeyError) as exc:
            raise ConfigError(f"DKIM key {path}: not a usable RSA private key ({exc})") from None
        return signer

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front; the rest is untouched."""
        signature: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=_OVERSIGNED,
            linesep=b"\r\n",
        )
        return signature + message
