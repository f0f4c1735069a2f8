"""`make demo`: the whole product on embedded defaults, end to end, in ./demo.

Imports the sample articles and subscribers, builds an edition, writes the
preview files, starts a local SMTP sink, sends the digest through it into a
Maildir, and prints where each thing is. Every step runs the real
`newsletter` command, exactly as a newcomer would type it.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from console_demo import console_login

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
# The sample articles were published on 25-26 November 2026; the window starts before them.
SINCE = "2026-11-24T00:00:00Z"


# The newsroom's look, shared by the email and the readers' pages.
BRANDED = """\
privacy_url = "https://news.example.com/privacy"
schedule_text = "every morning at 7am"

[brand]
name = "The Morning Briefing"
logo_url = "https://news.example.com/static/logo-white.png"
logo_width = 180
logo_height = 36
logo_alt = "Britain's News Portal"
colour = "#7a1020"
accent = "#9c1c2c"
font = "Georgia, 'Times New Roman', serif"
footer_text = "Written by the Britain's News Portal newsroom in London."

[[signup_sections]]
topic = "uk"
label = "UK"
description = "What is happening across the four nations, from councils to courts."

[[signup_sections]]
topic = "politics"
label = "Politics"
description = "Westminster and the devolved governments, explained without the spin."

[[signup_sections]]
topic = "business"
label = "Business"
description = "Prices, pay and the companies that set them."

[[signup_sections]]
topic = "crime"
label = "Crime"
description = "Investigations and the court cases that matter."

[[signup_sections]]
topic = "world"
label = "World"
description = "The stories from abroad that will reach Britain next."
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(env: dict[str, str], *args: str) -> str:
    print(f"\n$ newsletter {' '.join(args)}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"demo: 'newsletter {args[0]}' failed with exit status {proc.returncode}")
    return proc.stdout


def wait_for_port(port: int, sink: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sink.poll() is not None:
            raise SystemExit("demo: the SMTP sink stopped before it was ready")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("demo: the SMTP sink did not start within 20 s")


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    (DEMO / "newsletter.toml").write_text(BRANDED, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{DEMO / 'newsletter.db'}",
            "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "COLUMNS": "110",
        }
    )
    run(env, "articles", "import", str(ROOT / "examples" / "articles"))
    run(env, "subscribers", "import", str(ROOT / "examples" / "subscribers.csv"), "--confirmed")
    edition = run(env, "edition", "build", "--since", SINCE).strip().splitlines()[-1]
    run(env, "edition", "list")
    run(env, "preview", edition, "--out", str(DEMO / "preview"))

    maildir = DEMO / "maildir"
    print(f"\n$ newsletter sink --port {port} --maildir {maildir}   (in the background)")
    sink_log = (DEMO / "sink.log").open("wb")
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "sink",
            "--port",
            str(port),
            "--maildir",
            str(maildir),
        ],
        cwd=DEMO,
        env=env,
        stdout=sink_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, sink)
        run(env, "send", edition)
        run(env, "status", edition)
    finally:
        time.sleep(0.5)  # let the sink write its last message
        sink.terminate()
        sink.wait(timeout=10)
        sink_log.close()

    received = len(mailbox.Maildir(str(maildir), create=False))
    print("\nWhere everything is:")
    print(f"  database            {DEMO / 'newsletter.db'}")
    for suffix in ("html", "txt", "eml"):
        print(f"  preview ({suffix:4})      {DEMO / 'preview' / f'{edition}.{suffix}'}")
    print(f"  delivered messages  {maildir}/new  ({received} messages)")
    print(f"  sink log            {DEMO / 'sink.log'}")
    print(f"\nOpen the preview in a browser: file://{DEMO / 'preview' / f'{edition}.html'}")
    serve = f"cd demo && ../.venv/bin/newsletter preview {edition} --serve"
    print(f"Or see it at 600 px and 375 px: {serve}")
    console_login(env, DEMO)  # the editor's console: a demo login (scripts/console_demo.py)


if __name__ == "__main__":
    main()
