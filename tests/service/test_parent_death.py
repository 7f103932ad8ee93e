"""`service.runner._die_with_parent`, both ways it works: a worker whose parent process
ends (here with os._exit, as abruptly as a SIGKILL) ends too, through Linux's parent-death
signal and through the watchdog used where there is no prctl. Real processes, spawned as
the solver pool spawns them."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from service.runner import _die_with_parent
from tests.service.helpers import wait_until

LONG_S = 600.0  # the worker would sleep this long if nothing ended it


def _worker(mode: str, report: Any) -> None:
    if mode == "watchdog":
        sys.platform = "darwin"  # this process only: as if there were no prctl
    report.put((os.getpid(), _die_with_parent()))
    time.sleep(LONG_S)


def _parent(mode: str, report: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=_worker, args=(mode, report), daemon=False)
    worker.start()
    time.sleep(LONG_S)  # until the test kills it


def _exists(pid: int) -> bool:
    """Still a process (a zombie, dead but not yet reaped, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mode", ["prctl", "watchdog"])
def test_a_worker_dies_with_its_parent(mode: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    report = ctx.Queue()
    parent = ctx.Process(target=_parent, args=(mode, report))
    parent.start()
    try:
        worker_pid, how = report.get(timeout=60)
        assert how == mode
        assert _exists(worker_pid)
        parent.kill()  # SIGKILL: no clean-up of any kind in the parent
        parent.join(30)
        wait_until(lambda: not _exists(worker_pid), 30, f"worker {worker_pid} to die")
    finally:
        if parent.is_alive():
            parent.kill()
