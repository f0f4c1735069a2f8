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


def test_an_all_digit_random_suffix_is_not_read_as_the_pid() -> None:
    """The random part is hex, so about 2% of ids are all digits: 'vm:1666:93833518'
    once read as host 'vm:1666', pid 93833518 (a CI run failed on it)."""
    import socket

    from newsletter.delivery.lease import _host

    for host in (_host(), socket.gethostname()):
        assert is_this_process(f"{host}:{os.getpid()}:93833518")
        assert not owner_is_gone(f"{host}:{os.getpid()}:93833518")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert owner_is_gone(f"{_host()}:{proc.pid}:12345678")
