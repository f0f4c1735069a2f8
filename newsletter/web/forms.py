"""Reading a posted form: small, URL-encoded, UTF-8, or refused."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

__all__ = [
    "MAX_FORM_BYTES",
    "FormError",
    "read_form",
]

MAX_FORM_BYTES = 16 * 1024


class FormError(ValueError):
    """The request body is not a small URL-encoded form."""


async def read_form(request: Request) -> dict[str, list[str]]:
    """The URL-encoded form in the body (at most 16 KB), as field -> values."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("expected an application/x-www-form-urlencoded form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError("form too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("form is not UTF-8") from None
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=100, strict_parsing=False)
    except ValueError:
        raise FormError("form has too many fields") from None
