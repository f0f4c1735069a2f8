"""Web fixtures: ``env``, the app over a fresh database sending through ``smtp_server``,
and ``client``, an httpx client talking to that app in process (no socket).

The helpers behind them (CSRF tokens, a real uvicorn, confirmed readers) are in
:mod:`tests.support.web`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from newsletter.core.config import Settings
from tests.plugins.smtp import SMTPServer
from tests.support.web import WebEnv, asgi_client, make_env

__all__ = ["client", "env"]


@pytest.fixture
def env(settings: Settings, smtp_server: SMTPServer) -> WebEnv:
    """The web app over a fresh database; its confirmation emails go to ``smtp_server``."""
    return make_env(settings, smtp_server.url)


@pytest.fixture
async def client(env: WebEnv) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``env``'s app (its cookie jar is one reader's browser)."""
    async with asgi_client(env.app) as http:
        yield http
