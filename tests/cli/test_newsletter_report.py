"""Unsubscribes per newsletter in ``newsletter report``, through the real CLI, a real
aiosmtpd relay and the running app: a one-click unsubscribe from one newsletter counts
for that newsletter's edition, even when another newsletter's edition reached the
reader after it, and a reader who leaves their last newsletter counts once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.plugins.smtp import SMTPServer
from tests.support.cli import EXAMPLES, Run, ok, one_click_path, send_newsletter, serve_env
from tests.support.web import serve_process

TOML = """
[[newsletters]]
id = "daily"
name = "The Daily Briefing"

[[newsletters]]
id = "breaking"
name = "Breaking News"
"""


def _unsubscribes(run: Run, edition: str) -> int:
    report = json.loads(ok(run("report", edition, "--json")).stdout)
    return int(report["unsubscribes"])


def test_a_one_click_unsubscribe_from_one_newsletter_counts_for_its_edition(
    run_cli: Run, smtp_server: SMTPServer, workdir: Path
) -> None:
    (workdir / "newsletter.toml").write_text(TOML, encoding="utf-8")
    ok(run_cli("articles", "import", str(EXAMPLES / "articles")))
    add = ("subscribers", "add")
    both = ("--newsletter", "daily", "--newsletter", "breaking", "--confirmed")
    ok(run_cli(*add, "cy@example.com", *both))
    ok(run_cli(*add, "bo@example.com", "--newsletter", "breaking", "--confirmed"))
    ok(run_cli(*add, "ann@example.com", "--confirmed"))  # daily only
    breaking, sent = send_newsletter(run_cli, smtp_server, "breaking")
    assert sorted(sent) == ["bo@example.com", "cy@example.com"]
    daily, _ = send_newsletter(run_cli, smtp_server, "daily")  # reaches cy after the alert
    assert _unsubscribes(run_cli, breaking) == 0

    env = serve_env(workdir, smtp_server.url)
    with serve_process(workdir, env) as server, httpx.Client(base_url=server.url) as http:
        # cy leaves breaking only, from the alert's one-click header (RFC 8058)
        answer = http.post(
            one_click_path(sent["cy@example.com"]), content=b"List-Unsubscribe=One-Click"
        )
        assert answer.status_code == 200
        assert "You still receive: The Daily Briefing" in answer.text
    shown = json.loads(ok(run_cli("subscribers", "show", "cy@example.com")).stdout)
    assert shown["subscriber"]["status"] == "confirmed"  # still a daily reader
    # the later daily edition does not take the blame for leaving breaking
    assert _unsubscribes(run_cli, breaking) == 1
    assert _unsubscribes(run_cli, daily) == 0
    text = ok(run_cli("report", breaking)).stdout
    assert re.search(r"^unsubscribes +1$", text, re.MULTILINE), text

    with serve_process(workdir, env) as server, httpx.Client(base_url=server.url) as http:
        # bo's last newsletter: two events (breaking left, then everything), one reader
        answer = http.post(
            one_click_path(sent["bo@example.com"]), content=b"List-Unsubscribe=One-Click"
        )
        assert answer.status_code == 200
    shown = json.loads(ok(run_cli("subscribers", "show", "bo@example.com")).stdout)
    assert shown["subscriber"]["status"] == "unsubscribed"
    assert _unsubscribes(run_cli, breaking) == 2
    assert _unsubscribes(run_cli, daily) == 0
    since = json.loads(ok(run_cli("report", "--since", "3650d", "--json")).stdout)
    lines = {e["edition_id"]: e["unsubscribes"] for e in since["editions"]}
    assert lines == {breaking: 2, daily: 0}
