"""Top-level ``serve`` command: the readers' web pages, with uvicorn."""

from __future__ import annotations

from urllib.parse import urlsplit

import typer

from newsletter.cli.common import err, get_engine, get_settings
from newsletter.core.config import is_loopback_host
from newsletter.core.errors import ConfigError

__all__ = [
    "register",
    "serve",
]


def register(root: typer.Typer) -> None:
    """Add this module's commands to ``root``."""
    root.command("serve")(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    preview: bool = typer.Option(
        False,
        "--preview/--no-preview",
        help="Serve /preview/EDITION even on a public address (always on for loopback).",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Listen on a public address although NEWSLETTER_BASE_URL is not https.",
    ),
) -> None:
    """Serve signup with double opt-in, one-click unsubscribe, preferences and the archive.

    Links in every email point at NEWSLETTER_BASE_URL, which must reach this server.
    It listens on 127.0.0.1 by default; put it behind an https reverse proxy to
    publish it.

    Example:

        newsletter serve --host 127.0.0.1 --port 8000
    """
    import uvicorn

    from newsletter.web.app import create_app

    settings = get_settings()
    loopback = is_loopback_host(host)
    if not loopback and urlsplit(settings.base_url).scheme != "https" and not insecure:
        raise ConfigError(
            f"refusing to listen on {host}: NEWSLETTER_BASE_URL ({settings.base_url}) is not "
            "https, so tokens would travel in the clear (pass --insecure to do it anyway)"
        )
    if not loopback:
        err.print(
            f"warning: listening on {host}: only an https reverse proxy should reach this port",
            markup=False,
        )
    app = create_app(settings, get_engine(), allow_preview=loopback or preview)
    err.print(f"serving on http://{host}:{port} (links point at {settings.base_url})", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)
