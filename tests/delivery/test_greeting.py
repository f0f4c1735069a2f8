"""The greeting end to end: a CSV imported with name and first-name columns, a real send
to aiosmtpd, and each received message greets its reader by the right name."""

from __future__ import annotations

import io

import pytest
from sqlalchemy.engine import Engine

from newsletter.content.render import MAX_GREETING_NAME
from newsletter.core.config import Settings
from newsletter.database import open_database
from newsletter.delivery.engine import SendOptions, send_edition
from subscribers.importer import import_csv
from tests.plugins.smtp import SMTPServer
from tests.support.sendkit import populate, with_smtp

LONG = "Bartholomew" * 20  # 220 characters: no first name is that long


@pytest.fixture
def engine(settings: Settings) -> Engine:
    return open_database(settings.database_url)


def _import(engine: Engine, settings: Settings, csv_text: str) -> None:
    report = import_csv(
        engine, io.BytesIO(csv_text.encode()), secret=settings.secret(), confirmed=True
    )
    assert report.rejected == 0, report


def _parts(server: SMTPServer) -> dict[str, tuple[str, str, str]]:
    """Recipient -> (raw header block, text part, HTML part) of what the server received."""
    found = {}
    for item in server.received:
        [rcpt] = item.rcpt_tos
        message = item.message()
        text, html = (str(p.get_content()) for p in message.iter_parts())
        head = item.data.partition(b"\r\n\r\n")[0].decode("ascii")
        found[rcpt] = (head, text, html)
    return found


def _greeting(text: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith("Hello")]
    return line


async def test_greeting_uses_first_name_from_the_csv(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    _import(
        engine,
        settings,
        "email,name,First Name\r\n"
        "james@example.org,James Okafor,Jim\r\n"  # a first name wins over the name's first word
        "ada@example.org,Ada Lovelace,\r\n"  # none: the name's first word
        "mx@example.org,,Sam\r\n"  # a first name and no name column value
        'eve@example.org,Eve Adams,"<b>Eve</b> & <script>x</script>"\r\n'
        'crlf@example.org,Carol Jones,"Carol\r\nBcc: victim@example.net"\r\n'
        f"long@example.org,Lena Long,{LONG}\r\n",
    )
    edition_id = populate(engine, settings, 0)
    config = with_smtp(settings, smtp_server.url)
    report = await send_edition(config, engine, edition_id, options=SendOptions(concurrency=2))
    assert report.sent == 6
    got = _parts(smtp_server)

    assert _greeting(got["james@example.org"][1]) == "Hello Jim,"
    assert ">Hello Jim,</p>" in got["james@example.org"][2]
    # CSS lines starting with a dot arrive whole, though the sender does not dot-stuff
    # (the bytes have none at a line start: QP writes "=2E")
    assert any(line.startswith(".") for line in got["james@example.org"][2].splitlines())
    assert _greeting(got["ada@example.org"][1]) == "Hello Ada,"
    assert _greeting(got["mx@example.org"][1]) == "Hello Sam,"

    head, text, html = got["eve@example.org"]
    assert _greeting(text) == "Hello <b>Eve</b> & <script>x</script>,"
    assert ">Hello &lt;b&gt;Eve&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;,</p>" in html
    assert "<script>x" not in html
    assert "<b>Eve" not in html

    head, text, html = got["crlf@example.org"]
    assert _greeting(text) == "Hello Carol Bcc: victim@example.net,"  # one line
    assert "\nBcc:" not in head
    assert "victim" not in head
    assert ">Hello Carol Bcc: victim@example.net,</p>" in html

    # far too long for a first name: the name's first word instead, nothing of the cell
    head, text, html = got["long@example.org"]
    assert _greeting(text) == "Hello Lena,"
    assert "Bartholomew" not in text
    assert "Bartholomew" not in html
    assert all(len(_greeting(t)) <= len("Hello ,") + MAX_GREETING_NAME for _, t, _ in got.values())


async def test_test_send_greets_by_first_name(
    settings: Settings, engine: Engine, smtp_server: SMTPServer
) -> None:
    _import(engine, settings, "email,name,first_name\r\nj@example.org,James Okafor,Jimmy\r\n")
    edition_id = populate(engine, settings, 0)
    config = with_smtp(settings, smtp_server.url)
    await send_edition(config, engine, edition_id, options=SendOptions(test_to="j@example.org"))
    [(_, text, _)] = _parts(smtp_server).values()
    assert _greeting(text) == "Hello Jimmy,"
