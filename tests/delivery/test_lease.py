"""Worker ids and leases: who is alive, as senders and schedulers both ask it."""

from __future__ import annotations

import os
import subprocess
import sys

from newsletter.delivery.lease import is_this_process, new_worker_id, owner_is_gone


def test_owner_is_gone_only_for_dead_local_processes() -> None:
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host = socket.gethostname()
    assert owner_is_gone(f"{host}:{proc.pid}")
    assert not owner_is_gone(f"{host}:{os.getpid()}")
    assert not owner_is_gone(f"elsewhere.example:{proc.pid}")
    assert not owner_is_gone("garbage")
    assert owner_is_gone(f"{host}:{proc.pid}:0a1b2c3d")  # the sender's form, too
    assert not owner_is_gone(f"{host}:{os.getpid()}:0a1b2c3d")


def test_a_new_worker_id_names_this_host_and_process() -> None:
    worker = new_worker_id()
    assert f":{os.getpid()}:" in worker
    assert not owner_is_gone(worker)
    assert is_this_process(worker)
    assert not is_this_process(worker.replace(f":{os.getpid()}:", f":{os.getpid() + 1}:"))
    assert not is_this_process("elsewhere.example:1:00")
