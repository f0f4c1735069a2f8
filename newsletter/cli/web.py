"""Top-level ``serve``: the readers' pages and the editors' console, with uvicorn."""

from __future__ import annotations

from urllib.parse import urlsplit

import typer

from newsletter.cli.common import err, get_engine, get_settings
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
    preview_port: int | None = typer.Option(
        None,
        "--preview-port",
        min=0,
        max=65535,
        help="Also serve /preview/EDITION (drafts too) for editors on 127.0.0.1:N only; "
        "it refuses any request a proxy forwarded.",
    ),
    header_timeout: float = typer.Option(
        10.0,
        "--header-timeout",
        min=0.1,
        help="Seconds a client has to send a request's headers before it is cut off.",
    ),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Listen on a public address although NEWSLETTER_BASE_URL is not https.",
    ),
) -> None:
    """Serve the readers' pages (signup, unsubscribe, preferences, archive) and the console.

    The editors' console is at /admin (create an account first with
    `newsletter users add EMAIL --role admin`). Links in every email point at
    NEWSLETTER_BASE_URL, which must reach this server.
    It listens on 127.0.0.1 by default; put it behind an https reverse proxy to
    publish it, and name that proxy in NEWSLETTER_TRUSTED_PROXIES so that its
    X-Forwarded-For is believed (nobody's is by default). Tokens in paths are
    redacted from the log.

    Example:

        newsletter serve --host 127.0.0.1 --port 8000 --preview-port 8001
    """
    from newsletter.core.config import is_loopback_host
    from newsletter.web.app import create_app
    from newsletter.web.preview import create_editor_preview_app
    from newsletter.web.server import serve as run_servers
    from newsletter.web.server import server_config

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
    engine = get_engine()
    main = server_config(create_app(settings, engine), host, port, header_timeout=header_timeout)
    preview = None
    if preview_port is not None:
        preview = server_config(
            create_editor_preview_app(settings, engine),
            "127.0.0.1",
            preview_port,
            header_timeout=header_timeout,
        )
        err.print(
            f"editors' preview on http://127.0.0.1:{preview_port}/preview/EDITION "
            "(this machine only)",
            markup=False,
        )
    err.print(f"serving on http://{host}:{port} (links point at {settings.base_url})", markup=False)
    run_servers(main, preview)
