"""A parser for the `sbatch` and `scancel` options the Slurm export uses, written to the
grammar in Slurm's own manual pages (sbatch(1), scancel(1); slurm.schedmd.com). No package
installable from PyPI parses sbatch command lines (pyslurm needs a Slurm install and talks
to slurmctld), so the tests hold the export to the documented grammar with this instead.
Anything the grammar does not allow raises `SlurmSyntaxError`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import pandas as pd


class SlurmSyntaxError(ValueError):
    pass


_NAME = r"[A-Za-z0-9_.-]+"
# sbatch(1) --begin: HH:MM[:SS] [AM|PM], MMDD[YY], MM/DD[/YY], MM.DD[.YY],
# YYYY-MM-DD[THH:MM[:SS]], now[+count[seconds|minutes|hours|days|weeks]], today, tomorrow,
# midnight, noon, elevenses, fika, teatime
_BEGIN = re.compile(
    r"(\d{1,2}:\d{2}(:\d{2})?(\s?(AM|PM))?"
    r"|\d{4}(\d{2})?|\d{1,2}/\d{1,2}(/\d{2})?|\d{1,2}\.\d{1,2}(\.\d{2})?"
    r"|\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?"
    r"|now(\+\d+(seconds|minutes|hours|days|weeks)?)?"
    r"|today|tomorrow|midnight|noon|elevenses|fika|teatime)"
)
# sbatch(1) --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds
_TIME = re.compile(r"\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+")
# sbatch(1) --gres: <list> of name[[:type]:count], or none
_GRES_ITEM = re.compile(rf"(?P<name>{_NAME}?)(:(?P<type>[A-Za-z0-9_.-]+))?(:(?P<count>\d+))?")
_NODES = re.compile(r"\d+(-\d+)?")


def _gres(v: str) -> bool:
    return v == "none" or all(_GRES_ITEM.fullmatch(item) for item in v.split(","))


def _clusters(v: str) -> bool:
    return v == "all" or all(re.fullmatch(_NAME, c) for c in v.split(","))


_SBATCH: dict[str, Callable[[str], bool]] = {
    "job-name": lambda v: bool(v),
    "clusters": _clusters,
    "begin": lambda v: bool(_BEGIN.fullmatch(v)),
    "nodes": lambda v: bool(_NODES.fullmatch(v)),
    "gres": _gres,
    "time": lambda v: bool(_TIME.fullmatch(v)),
}
_SCANCEL: dict[str, Callable[[str], bool]] = {"clusters": _clusters, "name": lambda v: bool(v)}
_SHORT = {"J": "job-name", "M": "clusters", "b": "begin", "N": "nodes", "t": "time", "n": "name"}


def parse(line: str) -> tuple[str, dict[str, str], list[str]]:
    """(command, {long option: value}, positional arguments) of one command line."""
    words = shlex.split(line)
    if not words or words[0] not in ("sbatch", "scancel"):
        raise SlurmSyntaxError(f"not an sbatch or scancel line: {line!r}")
    grammar = _SBATCH if words[0] == "sbatch" else _SCANCEL
    opts: dict[str, str] = {}
    args: list[str] = []
    it = iter(words[1:])
    for w in it:
        if w.startswith("--"):
            name, eq, value = w[2:].partition("=")
            if not eq:
                value = next(it, "")
        elif w.startswith("-") and len(w) >= 2:
            name, value = _SHORT.get(w[1], w[1]), (w[2:] or next(it, ""))
        else:
            args.append(w)
            continue
        if name not in grammar:
            raise SlurmSyntaxError(f"{words[0]}: unknown option --{name}")
        if not grammar[name](value):
            raise SlurmSyntaxError(f"{words[0]}: --{name}={value!r} breaks its grammar")
        opts[name] = value
    if words[0] == "sbatch" and len(args) != 1:
        raise SlurmSyntaxError(f"sbatch takes one batch script, got {args}")
    return words[0], opts, args


def begin_time(value: str) -> pd.Timestamp:
    """A `--begin` of the YYYY-MM-DDTHH:MM:SS form as a (naive, local) timestamp."""
    return pd.Timestamp(value)


def gres_devices(value: str) -> int:
    """Devices per node a `--gres` asks for (the count of its gpu entries)."""
    total = 0
    for item in value.split(","):
        m = _GRES_ITEM.fullmatch(item)
        if m and m["name"] == "gpu":
            total += int(m["count"] or 1)
    return total


def time_hours(value: str) -> float:
    """A `--time` limit in hours."""
    days, _, rest = value.rpartition("-") if "-" in value else ("0", "", value)
    parts = [int(p) for p in rest.split(":")]
    if "-" in value:
        h, m, s = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, s = parts
    else:
        h, m, s = 0, parts[0], (parts[1] if len(parts) > 1 else 0)
    return int(days or 0) * 24 + h + m / 60 + s / 3600
