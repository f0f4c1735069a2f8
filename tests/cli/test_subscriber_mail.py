"""``subscribers add`` sends the confirmation email; ``resend-confirmation``; ``delete`` asks."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable
from pathlib import Path

from tests.plugins.smtp import SMTPServer
from tests.support.cli import EXAMPLES, CLIResult
from tests.support.terminal import on_a_terminal

Run = Callable[..., CLIResult]


def _text(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_add_sends_the_confirmation_email_and_never_prints_the_link(
    run_cli: Run, smtp_server: SMTPServer
) -> None:
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    added = run_cli("subscribers", "add", "ann@example.com", "--name", "Ann", env=env)
    assert added.code == 0, added.stderr
    assert "sent the confirmation email to ann@example.com" in added.stdout
    assert "/confirm/" not in added.stdout + added.stderr
    [mail] = smtp_server.received
    assert mail.rcpt_tos == ["ann@example.com"]
    assert "https://news.example.com/newsletter/confirm/" in _text(mail.data)

    confirmed = run_cli("subscribers", "add", "bo@example.com", "--confirmed", env=env)
    assert confirmed.code == 0
    quiet = run_cli("subscribers", "add", "cy@example.com", "--no-email", env=env)
    assert quiet.code == 0
    assert len(smtp_server.received) == 1  # neither of them was mailed

    again = run_cli("subscribers", "resend-confirmation", "--all-pending", env=env)
    assert again.code == 0, again.stderr
    assert "2 confirmation emails sent" in again.stdout
    assert sorted(m.rcpt_tos[0] for m in smtp_server.received[1:]) == [
        "ann@example.com",
        "cy@example.com",
    ]
    refused = run_cli("subscribers", "resend-confirmation", "bo@example.com", env=env)
    assert refused.code == 1
    assert refused.stderr.strip() == "error: bo@example.com is confirmed, not pending"


def test_a_relay_that_is_down_keeps_the_person_and_says_how_to_resend(run_cli: Run) -> None:
    env = {"NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:9"}  # nothing listens there
    added = run_cli("subscribers", "add", "dee@example.com", env=env)
    assert added.code == 1
    [line] = added.stderr.strip().splitlines()
    assert "is added (pending) but the confirmation email was not sent" in line
    assert "newsletter subscribers resend-confirmation dee@example.com" in line
    shown = json.loads(run_cli("subscribers", "show", "dee@example.com").stdout)
    assert shown["subscriber"]["status"] == "pending"


def test_an_unknown_topic_gets_a_suggestion(run_cli: Run) -> None:
    assert run_cli("articles", "import", str(EXAMPLES / "articles")).code == 0
    added = run_cli("subscribers", "add", "ed@example.com", "--topic", "Politcs", "--no-email")
    assert added.code == 0, added.stderr
    assert "warning: no article has the topic 'Politcs'; did you mean politics?" in added.stderr


def test_delete_asks_on_a_terminal(run_cli: Run, workdir: Path) -> None:
    assert run_cli("subscribers", "add", "fay@example.com", "--confirmed").code == 0
    code, screen = on_a_terminal(workdir, ["subscribers", "delete", "fay@example.com"], b"n\n")
    assert code == 1
    assert "Erase everything held about fay@example.com?" in screen
    assert run_cli("subscribers", "show", "fay@example.com").code == 0
    code, _ = on_a_terminal(workdir, ["subscribers", "delete", "fay@example.com"], b"y\n")
    assert code == 0
    assert run_cli("subscribers", "show", "fay@example.com").code == 1
