"""``newsletter preview``: an edition as a subscriber would get it, as files or served live."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter.cli.common import get_engine, get_settings, out
from newsletter.core.errors import ConfigError

if TYPE_CHECKING:
    from newsletter.content.preview import PreviewRecipient

__all__ = [
    "preview",
    "register",
]


def preview(
    edition: Annotated[
        str | None,
        typer.Argument(
            metavar="EDITION", help="Edition id (default: the latest built).", show_default=False
        ),
    ] = None,
    subscriber: Annotated[
        str | None,
        typer.Option(
            metavar="EMAIL", help="Personalise for this subscriber (default: a sample reader)."
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Folder for EDITION.html/.txt/.eml.")
    ] = Path("preview"),
    serve: Annotated[
        bool,
        typer.Option(
            "--serve", help="Serve desktop, mobile and text views at http://127.0.0.1:PORT/."
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (on 127.0.0.1).")] = 8025,
) -> None:
    """Write an edition's HTML, text part and complete .eml, as one subscriber receives it.

    With --serve, show the edition at 600 px and 375 px side by side with its
    text part instead; each reload renders afresh, so template edits show.

    Example:

        newsletter preview --out preview --subscriber ada@example.com
    """
    from newsletter.content.editions import get_edition, latest_edition
    from newsletter.content.preview import (
        build_preview,
        sample_recipient,
        subscriber_recipient,
        write_preview,
    )

    settings = get_settings()
    engine = get_engine()
    with engine.connect() as conn:
        chosen = get_edition(conn, edition) if edition else latest_edition(conn)
        recipient: PreviewRecipient = (
            subscriber_recipient(settings, conn, subscriber)
            if subscriber
            else sample_recipient(settings)
        )
    if serve:
        _serve(chosen.id, recipient, port)
        return
    files = write_preview(build_preview(settings, chosen, recipient), out_dir)
    out.print(f"edition {chosen.id} for {recipient.personal.email}", markup=False)
    for label, path in (("html", files.html), ("text", files.text), ("eml", files.eml)):
        out.print(f"  {label:<5}{path}", markup=False)


def _check_port(port: int) -> None:
    # uvicorn would report a taken port as a log record; say it in one line instead
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror})") from None


def _serve(edition_id: str, recipient: PreviewRecipient, port: int) -> None:
    import uvicorn

    from newsletter.content.editions import get_edition
    from newsletter.content.models import Edition

    _check_port(port)
    from newsletter.web.preview import create_preview_app

    settings = get_settings()
    engine = get_engine()

    def load() -> Edition:
        with engine.connect() as conn:
            return get_edition(conn, edition_id)

    app = create_preview_app(settings, load, recipient)
    out.print(
        f"previewing edition {edition_id} at http://127.0.0.1:{port}/ (Ctrl-C to stop)",
        markup=False,
    )
    # loopback only: the preview shows editions that were not sent yet
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def register(root: typer.Typer) -> None:
    """Add ``preview`` to ``root``."""
    root.command("preview")(preview)
