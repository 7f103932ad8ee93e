"""What an operator does to follow a plan: the ordered start / stop / pause / resume / move /
scale actions per site and hour that take the fleet from its current state to the plan, and
the two forms a scheduler takes them in (Slurm command lines, Kubernetes patches).

Everything here reads the plan's own tables (`workloads`, `assignments`), so a plan read
back from its bundle gives the same actions as the one just solved. The current state of
jobs is in the plan (`workloads.current_site`: where a job runs now); the current replicas of
services are not in the scenario, so the caller passes them (none given: nothing serving).

Rules, per job (its assignment hours split into blocks of consecutive hours):
- not running now: `start` at its first block; running now on the site it is placed on: no
  action if its first block begins at hour 0, else `pause` at hour 0 and `resume` at the block;
  running elsewhere: `move` at its first block (with a `pause` at hour 0 if the block begins
  later);
- `pause` the hour after each block that another block follows, `resume` at that block; the
  hour after its last block a job due after the horizon (`on_track`) is paused, a job whose
  work is done `finish`es (it ends by itself: no scheduler command, but its devices are free);
- running now and not placed: `stop` at hour 0 with the plan's reason.
Per service and (site, type): `scale` in each hour its devices differ from the hour before.
Within an hour, actions that free devices come before those that take them (stop, finish,
pause, scale down, move, resume, start, scale up), so following the list in order never needs
more devices than the plan does.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optimizer.contract import ACTIONS, JOB_KINDS

if TYPE_CHECKING:  # optimizer.plan's assembly writes the actions table: import no cycle
    from optimizer.plan.types import Plan

ACTION_KINDS = ("start", "stop", "finish", "pause", "resume", "move", "scale")
_RANK = {
    "stop": 0,
    "finish": 0,
    "pause": 1,
    "scale_down": 2,
    "move": 3,
    "resume": 4,
    "start": 5,
    "scale_up": 6,
}
"""Order within an hour: what frees devices first, what takes them last."""

ReplicaState = Mapping[tuple[str, str, str], int]
"""(service, site, accelerator) -> devices serving now."""


@dataclass(frozen=True)
class Action:
    hour: int
    action: str
    workload_id: str
    kind: str
    site_id: str  # where it happens (a move: the destination)
    accelerator: str
    devices: int  # a job: its gang; a scale: devices after it
    from_site: str = ""  # a move: where the job runs now
    previous_devices: int | None = None  # a scale: devices before it
    run_hours: int | None = None  # start / resume / move: hours the block it begins runs
    detail: str = ""

    @property
    def rank(self) -> int:
        if self.action == "scale":
            up = self.devices > (self.previous_devices or 0)
            return _RANK["scale_up" if up else "scale_down"]
        return _RANK[self.action]


_ACTION_FIELDS = tuple(f.name for f in fields(Action))
"""The actions table's columns an `Action` holds as it is (all but `seq` and `timestamp`)."""


def _blocks(hours: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted hours as blocks of consecutive hours, (first, last) each."""
    out: list[tuple[int, int]] = []
    for h in sorted(hours):
        if out and h == out[-1][1] + 1:
            out[-1] = (out[-1][0], h)
        else:
            out.append((h, h))
    return out


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _first(v: Any) -> str:
    """The first entry of a list column, as written in memory or read back from CSV."""
    if isinstance(v, list | tuple | np.ndarray):
        return str(v[0]) if len(v) else ""
    s = _text(v)
    if s.startswith("["):
        items = ast.literal_eval(s)
        return str(items[0]) if items else ""
    return s


@dataclass(frozen=True)
class _Placement:
    """Where and when the plan runs a job: its assignment rows, reduced."""

    site: str
    accelerator: str
    hours: tuple[int, ...]


_JOB_ACTION_COLUMNS = (
    "workload_id", "kind", "current_site", "devices", "reason", "accelerator", "status"
)  # fmt: skip
"""The workloads columns `_job_actions` reads (a row holds only these: a default plan's
7,000 jobs as whole records took a third of its actions' time)."""


def _job_actions(w: Mapping[str, Any], runs: _Placement | None, hours: int) -> list[Action]:
    """One job's actions (see the module docstring for the rules)."""
    jid, kind = str(w["workload_id"]), str(w["kind"])
    current = _text(w.get("current_site"))
    gang = int(w["devices"])
    if runs is None:
        if not current:
            return []
        why = _text(w.get("reason")) or "not placed in this plan"
        return [Action(0, "stop", jid, kind, current, _first(w["accelerator"]), gang, detail=why)]
    site, acc = runs.site, runs.accelerator
    blocks = _blocks(runs.hours)
    out: list[Action] = []

    def act(h: int, what: str, at: str, **kw: Any) -> None:
        out.append(Action(h, what, jid, kind, at, acc, gang, **kw))

    first, last = blocks[0]
    length = last - first + 1
    if not current:
        act(first, "start", site, run_hours=length)
    elif current == site:
        if first > 0:
            act(0, "pause", current, detail=f"waits for hour {first}")
            act(first, "resume", site, run_hours=length)
    else:
        if first > 0:
            act(0, "pause", current, detail=f"moves to {site} at hour {first}")
        act(first, "move", site, from_site=current, run_hours=length)
    for (_, prev_last), (b_first, b_last) in zip(blocks, blocks[1:], strict=False):
        act(prev_last + 1, "pause", site, detail=f"resumes at hour {b_first}")
        act(b_first, "resume", site, run_hours=b_last - b_first + 1)
    end = blocks[-1][1] + 1
    if end < hours and str(w["status"]) == "on_track":
        act(end, "pause", site, detail="due after the horizon: goes on in the next plan")
    elif end < hours:
        act(end, "finish", site, detail="its work is done: it ends by itself")
    return out


def _service_actions(
    kinds: Mapping[str, str], rows: pd.DataFrame, hours: int, current: ReplicaState
) -> list[Action]:
    """`scale` wherever a service's devices on a (site, type) change from the hour before
    (vectorised: a default plan has thousands of service site-type-hours)."""
    keys = sorted(
        set(zip(rows["workload_id"].astype(str), rows["site_id"].astype(str),
                rows["accelerator"].astype(str), strict=True)) | set(current)
    )  # fmt: skip
    pos = {k: i for i, k in enumerate(keys)}
    grid = np.zeros((len(keys), hours + 1), dtype=np.int64)  # column 0: now
    for k, n in current.items():
        grid[pos[k], 0] = n
    if len(rows):
        at = [pos[k] for k in zip(rows["workload_id"].astype(str), rows["site_id"].astype(str),
                                  rows["accelerator"].astype(str), strict=True)]  # fmt: skip
        grid[at, rows["hour"].to_numpy(dtype=np.int64) + 1] = rows["devices"].to_numpy(np.int64)
    out: list[Action] = []
    for i, h in zip(*np.nonzero(np.diff(grid, axis=1)), strict=True):
        k, s, a = keys[i]
        before, after = int(grid[i, h]), int(grid[i, h + 1])
        kind = kinds.get(k, "inference")
        out.append(Action(int(h), "scale", k, kind, s, a, after, previous_devices=before))
    return out


def plan_actions(plan: Plan, current_replicas: ReplicaState | None = None) -> list[Action]:
    """Every action of the plan's horizon, in the order to carry them out."""
    hours = int(plan.summary["hours"])
    wl, asg = plan.workloads, plan.assignments
    kinds = dict(zip(wl["workload_id"].astype(str), wl["kind"].astype(str), strict=True))
    is_job = asg["workload_id"].astype(str).map(kinds).isin(JOB_KINDS)
    placed: dict[str, _Placement] = {}
    for jid, site, acc, h in zip(
        asg.loc[is_job, "workload_id"].astype(str),
        asg.loc[is_job, "site_id"].astype(str),
        asg.loc[is_job, "accelerator"].astype(str),
        asg.loc[is_job, "hour"].astype(int),
        strict=True,
    ):
        p = placed.get(jid)
        placed[jid] = _Placement(site, acc, (*p.hours, h) if p else (h,))
    out: list[Action] = []
    jobs = wl[wl["kind"].astype(str).isin(JOB_KINDS)]
    for w in _records(jobs[[c for c in _JOB_ACTION_COLUMNS if c in jobs.columns]]):
        out += _job_actions(w, placed.get(str(w["workload_id"])), hours)
    svc = asg[~is_job & asg["workload_id"].astype(str).map(kinds).eq("inference")]
    out += _service_actions(kinds, svc, hours, current_replicas or {})
    return sorted(out, key=lambda a: (a.hour, a.rank, a.site_id, a.workload_id, a.accelerator))


def actions_table(
    plan: Plan, current_replicas: ReplicaState | None = None, actions: list[Action] | None = None
) -> pd.DataFrame:
    """The plan's actions as the bundle's `actions` table (columns from the contract)."""
    acts = plan_actions(plan, current_replicas) if actions is None else actions
    start = pd.Timestamp(plan.summary["start"]) if plan.summary.get("start") else None
    hours = int(plan.summary["hours"])
    iso = [
        (start + pd.Timedelta(hours=h)).isoformat() if start is not None else ""
        for h in range(hours + 1)
    ]
    # by column, not a dict per action: a default plan has 6,000 actions
    columns: dict[str, list[Any]] = {
        "seq": list(range(len(acts))),
        "timestamp": [iso[a.hour] for a in acts],
        **{name: [getattr(a, name) for a in acts] for name in _ACTION_FIELDS},
    }
    df = pd.DataFrame(columns if acts else [], columns=ACTIONS.names)  # none: untyped, as read
    for col in ("previous_devices", "run_hours"):
        df[col] = df[col].astype("Int64")
    return df


def _records(actions: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in actions.to_dict("records")]


def window(actions: pd.DataFrame, first_hour: int, hours: int) -> pd.DataFrame:
    """The actions of hours [first_hour, first_hour + hours), in order."""
    h = actions["hour"].astype(int)
    return actions[(h >= first_hour) & (h < first_hour + hours)].reset_index(drop=True)


# ---------------------------------------------------------------------------------- Slurm
DEVICES_PER_NODE = 8
"""Accelerators per node when a gang is split into `--nodes` x `--gres` (8-GPU servers)."""
SLURM_SCRIPT = "greenopt-{workload_id}.sbatch"
"""The batch script each job is assumed to have (a checkpointing job script per job)."""


def _slurm_time(hours: int) -> str:
    """A `--time` limit of whole hours: `[days-]hours:minutes:seconds`."""
    days, h = divmod(hours, 24)
    return f"{days}-{h:02d}:00:00" if days else f"{h:02d}:00:00"


def _gres_name(acc: str) -> str:
    """A GRES type is a plain token: the accelerator name lowercased, other characters to _."""
    return re.sub(r"[^a-z0-9_.-]", "_", acc.lower())


def slurm_lines(actions: pd.DataFrame, *, devices_per_node: int = DEVICES_PER_NODE) -> list[str]:
    """The job actions as Slurm commands, one site a cluster (`--clusters`).

    start / resume / move: one `sbatch` per run block, held until the block's hour by
    `--begin` (the hour's local wall time: the clusters keep the scenario's time zone) and
    ended by `--time` at the block's end, so a pause needs no command; the job checkpoints
    at its time limit and the next block's `sbatch` resumes it. A running job the plan stops,
    pauses at hour 0 or moves away is cancelled on its cluster by name (`scancel`), to run
    at the hour in the comment above it. Services are not Slurm jobs (see
    `kubernetes_patches`).
    """
    lines: list[str] = []
    for r in _records(actions[actions["kind"].isin(JOB_KINDS)]):
        when = pd.Timestamp(str(r["timestamp"])).strftime("%Y-%m-%dT%H:%M:%S")
        jid, site = str(r["workload_id"]), str(r["site_id"])
        if r["action"] in ("start", "resume", "move"):
            if r["action"] == "move" and int(r["hour"]) == 0:  # later: paused at hour 0 already
                lines.append(f"# {when} {jid} leaves {r['from_site']}")
                lines.append(f"scancel --clusters={r['from_site']} --name={jid}")
            gang = int(r["devices"])
            per_node = min(gang, devices_per_node)
            nodes = math.ceil(gang / per_node)
            lines.append(
                f"sbatch --job-name={jid} --clusters={site} --begin={when} "
                f"--nodes={nodes} --gres=gpu:{_gres_name(str(r['accelerator']))}:{per_node} "
                f"--time={_slurm_time(int(r['run_hours']))} {SLURM_SCRIPT.format(workload_id=jid)}"
            )
        elif r["action"] == "stop" or (r["action"] == "pause" and int(r["hour"]) == 0):
            lines.append(f"# {when} {r['action']} {jid}: {r['detail']}")
            lines.append(f"scancel --clusters={site} --name={jid}")
        elif r["action"] == "finish":
            lines.append(f"# {when} {jid} on {site} finishes its work")
        else:  # a pause after a block this export submitted: its --time limit ends it
            lines.append(f"# {when} pause {jid} on {site}: its --time limit ends the block")
    return lines


# ----------------------------------------------------------------------------- Kubernetes
NAMESPACE = "greenopt"
ACCELERATOR_LABEL = "greenopt.io/accelerator"
"""The node label naming a node's accelerator type (what `nodeSelector` matches)."""


def k8s_name(*parts: str) -> str:
    """A DNS-1123 name (lowercase alphanumerics and '-', at most 63) from the parts."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    return name[:63].rstrip("-") or "x"


def _deployment_patch(service: str, acc: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": k8s_name(service, acc), "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
    }


def _job_patch(job: str, acc: str, *, suspend: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"suspend": suspend}
    if not suspend:  # placement is set while suspended, before the pods are made
        spec["template"] = {"spec": {"nodeSelector": {ACCELERATOR_LABEL: acc}}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": k8s_name(job), "namespace": NAMESPACE},
        "spec": spec,
    }


def kubernetes_patches(actions: pd.DataFrame) -> list[dict[str, Any]]:
    """The actions as Kubernetes patches, one site a cluster (kubeconfig context).

    Each entry: `at` (ISO time), `cluster`, `action`, `workload_id`, `verb` (`patch`, or
    `delete` for a stopped job) and `object`, a strategic-merge patch (`kubectl patch`) of
    a Deployment (a service on one type: `spec.replicas`) or a Job (`spec.suspend`, and
    `spec.template.spec.nodeSelector` when it is let run). A move is two entries: suspended
    where it runs now, let run where it goes.
    """
    out: list[dict[str, Any]] = []

    def add(r: dict[str, Any], cluster: str, verb: str, obj: dict[str, Any]) -> None:
        out.append(
            {
                "at": str(r["timestamp"]),
                "cluster": cluster,
                "action": str(r["action"]),
                "workload_id": str(r["workload_id"]),
                "verb": verb,
                "object": obj,
            }
        )

    for r in _records(actions):
        jid, acc, site = str(r["workload_id"]), str(r["accelerator"]), str(r["site_id"])
        if r["action"] == "scale":
            add(r, site, "patch", _deployment_patch(jid, acc, int(r["devices"])))
        elif r["action"] == "finish":  # the Job completes by itself
            continue
        elif r["action"] == "stop":
            add(r, site, "delete", _job_patch(jid, acc, suspend=True))
        elif r["action"] == "pause":
            add(r, site, "patch", _job_patch(jid, acc, suspend=True))
        elif r["action"] == "move":
            add(r, str(r["from_site"]), "patch", _job_patch(jid, acc, suspend=True))
            add(r, site, "patch", _job_patch(jid, acc, suspend=False))
        else:  # start, resume
            add(r, site, "patch", _job_patch(jid, acc, suspend=False))
    return out


def kubernetes_json(actions: pd.DataFrame) -> str:
    """`kubernetes_patches` as JSON (also valid YAML, which is a superset of JSON)."""
    return json.dumps(kubernetes_patches(actions), indent=2) + "\n"
