"""Several newsletters, end to end: the real CLI, a real aiosmtpd relay and `newsletter serve`
over HTTP. A send of one newsletter reaches only its readers, with its own List-Id; a
one-click unsubscribe leaves that newsletter only; "unsubscribe from all" leaves them all;
a forged newsletter id in the signup form is refused."""

from __future__ import annotations

import json
from email import message_from_bytes
from pathlib import Path

import httpx

from tests.plugins.smtp import SMTPServer
from tests.support.cli import EXAMPLES, Run, ok, one_click_path, send_newsletter, serve_env
from tests.support.web import csrf_token, serve_process, wait_for

TOML = """
[[newsletters]]
id = "daily"
name = "The Daily Briefing"
description = "The stories that matter, every morning."

[[newsletters]]
id = "breaking"
name = "Breaking News"
description = "The big stories, as they happen."
cron = "0 12 * * *"
timezone = "Europe/London"
"""


def _show(run: Run, email: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(ok(run("subscribers", "show", email)).stdout)
    return data


def _choices(run: Run, email: str) -> dict[str, str]:
    shown = _show(run, email)["subscriptions"]
    assert isinstance(shown, list)
    return {s["newsletter_id"]: s["status"] for s in shown}


def test_two_newsletters_send_unsubscribe_and_signup(
    run_cli: Run, smtp_server: SMTPServer, workdir: Path
) -> None:
    (workdir / "newsletter.toml").write_text(TOML, encoding="utf-8")
    ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    add = ("subscribers", "add")
    ok(run_cli(*add, "ann@example.com", "--confirmed"))  # the default newsletter
    ok(run_cli(*add, "bo@example.com", "--newsletter", "breaking", "--confirmed"))
    both = ("--newsletter", "daily", "--newsletter", "breaking")
    ok(run_cli(*add, "cy@example.com", *both, "--confirmed"))
    wrong = run_cli(*add, "dee@example.com", "--newsletter", "braeking", "--confirmed")
    assert wrong.code == 1
    [line] = wrong.stderr.strip().splitlines()
    assert "no newsletter 'braeking'; did you mean 'breaking'?" in line
    assert "Traceback" not in wrong.stderr

    listed = ok(run_cli("newsletters", "--json"))
    counts = {n["id"]: n["receiving"] for n in json.loads(listed.stdout)["newsletters"]}
    assert counts == {"daily": 2, "breaking": 2}
    breaking_list = ok(run_cli("subscribers", "list", "--newsletter", "breaking", "--json"))
    assert sorted(p["email"] for p in json.loads(breaking_list.stdout)) == [
        "bo@example.com",
        "cy@example.com",
    ]

    # a send of one newsletter reaches its readers only, under its own List-Id
    # repeats allowed: the same stories go to both newsletters here
    _, breaking = send_newsletter(run_cli, smtp_server, "breaking")
    assert sorted(breaking) == ["bo@example.com", "cy@example.com"]
    _, daily = send_newsletter(run_cli, smtp_server, "daily")
    assert sorted(daily) == ["ann@example.com", "cy@example.com"]
    b_head = message_from_bytes(breaking["cy@example.com"])
    d_head = message_from_bytes(daily["cy@example.com"])
    assert b_head["List-Id"] == '"Breaking News" <breaking.news.example.com>'
    assert d_head["List-Id"] == '"The Daily Briefing" <daily.news.example.com>'
    assert str(b_head["Feedback-ID"]).split(":")[2] == "breaking"

    env = serve_env(workdir, smtp_server.url)
    with serve_process(workdir, env) as server, httpx.Client(base_url=server.url) as http:
        # RFC 8058 one-click from the breaking alert: cy leaves breaking, keeps daily
        path = one_click_path(breaking["cy@example.com"])
        answer = http.post(path, content=b"List-Unsubscribe=One-Click")
        assert answer.status_code == 200
        assert "You still receive: The Daily Briefing" in answer.text
        assert _choices(run_cli, "cy@example.com") == {
            "daily": "subscribed",
            "breaking": "unsubscribed",
        }
        assert _show(run_cli, "cy@example.com")["subscriber"]["status"] == "confirmed"  # type: ignore[index]

        # the daily's page offers "all" too; pressing it leaves every newsletter
        path = one_click_path(daily["ann@example.com"])
        page = http.get(path)
        assert "Unsubscribe from all our newsletters" in page.text
        assert "The Daily Briefing" in page.text
        ok(run_cli(*add, "ann@example.com", "--newsletter", "breaking"))
        assert http.post(path, data={"scope": "all"}).status_code == 200
        assert _choices(run_cli, "ann@example.com") == {
            "daily": "unsubscribed",
            "breaking": "unsubscribed",
        }
        assert _show(run_cli, "ann@example.com")["subscriber"]["status"] == "unsubscribed"  # type: ignore[index]

        # a forged newsletter id in the signup form is refused, naming the problem
        form = http.get("/")
        assert 'name="newsletter" value="daily" checked' in form.text
        assert 'name="newsletter" value="breaking"' in form.text
        fields = {"csrf_token": csrf_token(form.text), "consent": "yes"}
        forged = http.post(
            "/signup",
            data={**fields, "email": "eve@example.com", "newsletter": ["breaking", "admin"]},
        )
        assert forged.status_code == 400
        assert "Choose newsletters from the list." in forged.text
        signed = http.post(
            "/signup", data={**fields, "email": "fay@example.com", "newsletter": "breaking"}
        )
        assert signed.status_code == 200

        def recorded() -> bool:
            return run_cli("subscribers", "show", "fay@example.com").code == 0

        wait_for(recorded, "the signup to be recorded")
    assert run_cli("subscribers", "show", "eve@example.com").code == 1
    assert _choices(run_cli, "fay@example.com") == {"breaking": "subscribed"}

    # the newsletter's default schedule stands in for --cron
    added = ok(run_cli("schedule", "add", "--newsletter", "breaking"))
    assert "cron '0 12 * * *' Europe/London" in added.stdout
    shown = json.loads(ok(run_cli("schedule", "show", "1", "--json")).stdout)
    assert shown["newsletter_id"] == "breaking"
