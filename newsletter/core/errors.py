"""The one exception tree of the project.

Every error this package raises on purpose derives from :class:`NewsletterError`
and also from the builtin that fits, so callers may catch either::

    NewsletterError
    ├── ConfigError (ValueError)            bad or unsafe configuration
    │   └── InsecureTransportError          clear-text SMTP or AUTH to a non-loopback host
    ├── InputError (ValueError)             a user's input is wrong; .source/.line/.field say where
    │   ├── ArticleError                    an article file, feed or field
    │   ├── SubscriberInputError            an address, a CSV row, a subscriber field
    │   ├── HeaderInjectionError            CR or LF in a header value
    │   └── ScheduleError                   a time, a cron expression, a zone
    ├── TokenError (ValueError)             a signed link token is tampered, expired or mis-purposed
    │   ├── TokenExpiredError
    │   └── TokenOwnerGoneError             nobody holds the token's subscriber id any more
    ├── NotFoundError (LookupError)         no such article, edition, subscriber, schedule
    ├── StateError (RuntimeError)           the operation does not fit the current state
    │   └── SuppressedError                 erased or unsubscribed; re-adding needs a flag
    ├── RenderError (RuntimeError)          a template failed or produced an unsafe message
    └── DeliveryError (ConnectionError)     SMTP failures that end a send
        ├── SMTPUnavailableError            the relay cannot be reached at all
        └── SendPausedError                 too many failures in a row: the edition paused itself

The CLI prints ``str(error)`` as one line on stderr and exits non-zero; messages
must therefore be one line, say what and where, and never contain a secret.
"""

from __future__ import annotations

__all__ = [
    "ArticleError",
    "ConfigError",
    "DeliveryError",
    "HeaderInjectionError",
    "InputError",
    "InsecureTransportError",
    "NewsletterError",
    "NotFoundError",
    "RenderError",
    "SMTPUnavailableError",
    "ScheduleError",
    "SendPausedError",
    "StateError",
    "SubscriberInputError",
    "SuppressedError",
    "TokenError",
    "TokenExpiredError",
    "TokenOwnerGoneError",
]


class NewsletterError(Exception):
    """Base of every error raised on purpose by this project."""


class ConfigError(NewsletterError, ValueError):
    """The configuration is missing, malformed or unsafe."""


class InsecureTransportError(ConfigError):
    """Sending in the clear, or authenticating without TLS, to a host that is not loopback."""


class InputError(NewsletterError, ValueError):
    """A user's input is wrong; the message names the source, line and field where known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message
        self.source = source
        self.line = line
        self.field = field
        super().__init__(self._format())

    def with_field(self, field: str) -> str:
        """The message as it reads when the field is called ``field`` (e.g. the CLI's flag)."""
        return InputError(self.reason, source=self.source, line=self.line, field=field)._format()

    def _format(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source if self.line is None else f"{self.source}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class ArticleError(InputError):
    """An article file, feed entry or article field is invalid."""


class SubscriberInputError(InputError):
    """An address, a CSV row or a subscriber field is invalid."""


class HeaderInjectionError(InputError):
    """A header value (a name, a subject) contains CR or LF and is refused."""


class ScheduleError(InputError):
    """A schedule's time, cron expression or time zone is invalid."""


class TokenError(NewsletterError, ValueError):
    """A signed token is malformed, tampered with, or meant for another purpose."""


class TokenExpiredError(TokenError):
    """A signed token was genuine but is older than its purpose allows."""


class TokenOwnerGoneError(TokenError):
    """A token names a subscriber id nobody holds (erased): it acts on no one.

    ``subscriber_id`` is the id it names, for pages that answer "nothing held".
    """

    def __init__(self, subscriber_id: int) -> None:
        self.subscriber_id = subscriber_id
        super().__init__("the link is for someone no longer on the list")


class NotFoundError(NewsletterError, LookupError):
    """The named article, edition, subscriber or schedule does not exist."""


class StateError(NewsletterError, RuntimeError):
    """The operation does not fit the object's current state."""


class SuppressedError(StateError):
    """The address is suppressed (erased, unsubscribed, bounced); an explicit override is needed."""


class RenderError(NewsletterError, RuntimeError):
    """A template failed to render or produced a message that breaks the rules."""


class DeliveryError(NewsletterError, ConnectionError):
    """A failure that ends a send (not a per-recipient failure, which is recorded in the outbox)."""


class SMTPUnavailableError(DeliveryError):
    """The SMTP relay cannot be reached or refuses every connection."""


class SendPausedError(DeliveryError):
    """A send stopped itself after too many failures in a row; the edition is paused.

    ``.report`` holds the send's summary so far (a :class:`newsletter.delivery.engine.SendReport`).
    """

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report
