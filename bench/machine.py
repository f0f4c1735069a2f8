"""The machine a benchmark ran on, as one line: its figures mean little without it."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path

__all__ = ["machine"]


def machine() -> str:
    """Cores, CPU model, Python, SQLite, OS, and the load average at the start."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}, "
        f"load average {load:.2f} at start"
    )
