"""What the benchmark ran on: CPU, cores, memory, load, library versions, git commit; and
peak-memory readings. Timings mean little without these on a shared 2-core machine."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from optimizer.solve import usable_cores

ROOT = Path(__file__).resolve().parents[1]
KIB_PER_MIB = 1024.0
# a fixed pure-Python workload timed at the start and the end of a run: how fast (and how
# contended) the machine was, so two runs' absolute times can be compared with care
CALIBRATION_LOOP = 3_000_000
CALIBRATION_REPEATS = 3


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / KIB_PER_MIB / KIB_PER_MIB, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _highs_version() -> str | None:
    try:
        from optimizer.solve import SolverSettings, new_highs

        h = new_highs(SolverSettings())  # without HiGHS' banner on stdout
        return f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    except Exception:  # a version string is not worth failing a benchmark for
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> dict[str, Any]:
    """The commit, and whether the work tree differs from it (the numbers then describe
    uncommitted code: say so rather than pretend they belong to the commit)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": (_git("rev-parse", "HEAD") or "").strip() or None,
        "dirty": bool(status) if status is not None else None,
        # porcelain lines are "XY path": the path starts at the fourth character
        "dirty_paths": sorted({line[3:] for line in status.splitlines() if line}) if status else [],
    }


def optimizer_digest() -> str:
    """A digest of optimizer/'s sources: the optimizer is being changed while benchmarks
    run, and a run whose tasks saw different code must say so."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "optimizer").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def calibration_s() -> float:
    """Best of a few runs of a fixed pure-Python loop, in seconds."""
    best = float("inf")
    for _ in range(CALIBRATION_REPEATS):
        t = time.perf_counter()
        total = 0
        for i in range(CALIBRATION_LOOP):
            total += i * i
        best = min(best, time.perf_counter() - t)
    return best


def describe() -> dict[str, Any]:
    """The machine and software of this run."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable_cores(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "highs": _highs_version(),
        "highspy": _version("highspy"),
        "pyomo": _version("pyomo"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "git": git_state(),
        "load_average_at_start": load_average(),
        "argv": sys.argv,
    }


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far (ru_maxrss; KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":  # bytes there
        kib = kib / KIB_PER_MIB
    return float(kib) / KIB_PER_MIB


def current_rss_mib() -> float | None:
    """The resident set size now (VmRSS), to separate the interpreter and imports from the
    solve in the peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / KIB_PER_MIB
    except OSError:
        pass
    return None
