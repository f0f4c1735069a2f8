"""How fast the command line starts, side by side with a bare Typer app in the same run.

Targets (issue: a CLI that starts at once): ``newsletter --help`` within 1.5x a
bare Typer app's ``--help``; ``subscribers list`` on an empty database within
2.5x the bare app; commands that do not render never import premailer.
Prints the median of several runs of each (the commands take turns, so other
work on the machine slows each alike), as wall time and as the CPU time the
process used, and the ratios of both.
"""

from __future__ import annotations

import os
import resource
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


def run_once(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """One run of ``command``: (wall seconds, CPU seconds of the child, user + system)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {stderr.decode()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime


def timed(
    commands: dict[str, list[str]], cwd: Path, env: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU time of each command over RUNS rounds (after one warm-up each).

    The commands take turns within each round, so a machine busy with other work
    slows each of them alike and the ratios stay fair.
    """
    for command in commands.values():
        run_once(command, cwd, env)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(RUNS):
        for name, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, after_cpu = run_once(command, cwd, env)
            walls[name].append(wall)
            cpus[name].append(after_cpu - (before.ru_utime + before.ru_stime))
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in commands}


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
    results = timed(
        {
            "bare": [py, str(bare), "--help"],
            "help": [*newsletter, "--help"],
            "list": [*newsletter, "subscribers", "list"],
        },
        folder,
        env,
    )
    print(f"runs per command: {RUNS}, taking turns (median wall time; median CPU time)")
    labels = {
        "bare": "bare Typer app --help",
        "help": "newsletter --help",
        "list": "newsletter subscribers list",
    }
    for name, label in labels.items():
        wall, cpu = results[name]
        print(f"  {label:<28} {wall * 1e3:7.0f} ms wall {cpu * 1e3:7.0f} ms CPU")
    bare_wall, bare_cpu = results["bare"]
    for name, what, target in (("help", "--help", 1.5), ("list", "subscribers list", 2.5)):
        wall, cpu = results[name]
        print(
            f"ratio {what} / bare --help: {wall / bare_wall:.2f} wall, {cpu / bare_cpu:.2f} CPU "
            f"(target <= {target})"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    heavy = {"premailer", "cssutils", "aiosmtplib", "dkim", "lxml", "httpx"}
    for args in (["--help"], ["subscribers", "list"], ["edition", "list"], ["articles", "list"]):
        loaded = imports([*newsletter, *args], folder, env) & heavy
        shown = ", ".join(sorted(loaded)) or "none"
        print(f"  newsletter {' '.join(args):<18} loads of {sorted(heavy)}: {shown}")


if __name__ == "__main__":
    main()
