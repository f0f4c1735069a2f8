"""The old home of the web's defences, kept only so that existing imports keep working.

The defences now live by concern: :mod:`newsletter.web.csrf` (form tokens),
:mod:`newsletter.web.forms` (reading a posted form), :mod:`newsletter.web.limits`
(request limits, ``RequestLimiter``), :mod:`newsletter.web.headers` (security
headers) and :mod:`newsletter.web.proxies` (whom to believe about the client).
Import from those; this module defines nothing.
"""

from __future__ import annotations

from newsletter.web.csrf import CSRF_COOKIE, CSRF_FIELD, CSRF_MAX_AGE, Csrf
from newsletter.web.forms import MAX_FORM_BYTES, FormError, read_form
from newsletter.web.headers import EMAIL_CSP, PAGE_CSP, SecurityHeaders, security_headers

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_MAX_AGE",
    "EMAIL_CSP",
    "MAX_FORM_BYTES",
    "PAGE_CSP",
    "Csrf",
    "FormError",
    "SecurityHeaders",
    "read_form",
    "security_headers",
]
