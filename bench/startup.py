"""How fast the command line starts, side by side with a bare Typer app in the same run.

Targets (issue: a CLI that starts at once): ``newsletter --help`` within 1.5x a
bare Typer app's ``--help``; ``subscribers list`` on an empty database within
2.5x the bare app; commands that do not render never import premailer.
Prints the median of several runs of each, and the ratios.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine

RUNS = 15
BARE = '''
import typer

app = typer.Typer(help="A bare Typer app with two commands.")


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye() -> None:
    """Say goodbye."""


if __name__ == "__main__":
    app()
'''


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """The median wall time of ``command`` over RUNS runs (after one warm-up run)."""
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode()[-300:]}")
    return statistics.median(times)


def imports(command: list[str], cwd: Path, env: dict[str, str]) -> set[str]:
    """The top-level packages ``command`` imports (from ``python -X importtime``)."""
    result = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], cwd=cwd, env=env, capture_output=True
    )
    found = set()
    for line in result.stderr.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            found.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return found


def main() -> None:
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="newsletter-startup-"))
    bare = folder / "bare.py"
    bare.write_text(BARE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=f"sqlite:///{folder / 'newsletter.db'}",
        NEWSLETTER_SECRET_KEY="startup-bench-key-Qm4vX9pL2sT7wK1zR8nB5cY3h",
        NEWSLETTER_BASE_URL="https://news.example.com/newsletter",
    )
    py = sys.executable
    newsletter = [py, "-m", "newsletter"]
    # an empty, migrated database for `subscribers list`
    subprocess.run([*newsletter, "init"], cwd=folder, env=env, capture_output=True, check=True)
    bare_help = timed([py, str(bare), "--help"], folder, env)
    ours_help = timed([*newsletter, "--help"], folder, env)
    ours_list = timed([*newsletter, "subscribers", "list"], folder, env)
    print(f"runs per command: {RUNS} (median wall time)")
    print(f"  bare Typer app --help        {bare_help * 1e3:7.0f} ms")
    print(f"  newsletter --help            {ours_help * 1e3:7.0f} ms")
    print(f"  newsletter subscribers list  {ours_list * 1e3:7.0f} ms")
    print(f"ratio --help / bare --help: {ours_help / bare_help:.2f} (target <= 1.5)")
    print(f"ratio subscribers list / bare --help: {ours_list / bare_help:.2f} (target <= 2.5)")
    heavy = {"premailer", "cssutils", "aiosmtplib", "dkim", "lxml", "httpx"}
    for args in (["--help"], ["subscribers", "list"], ["edition", "list"], ["articles", "list"]):
        loaded = imports([*newsletter, *args], folder, env) & heavy
        shown = ", ".join(sorted(loaded)) or "none"
        print(f"  newsletter {' '.join(args):<18} loads of {sorted(heavy)}: {shown}")


if __name__ == "__main__":
    main()
