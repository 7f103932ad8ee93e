"""Kubernetes: the JSON of `kubectl get jobs -o json` or `kubectl get pods -o json` (a
`List` whose `items` are Jobs or Pods; one listing may hold both).

GPUs: the sum over the pod template's containers of the limits (else requests) of a
device-plugin resource (`GPU_RESOURCES`); a Job holds that many per pod times its
`parallelism` (default 1), all at once. Type: the values the pod asks for under a
GPU-type node label (`TYPE_LABELS`), by `nodeSelector` or by a required node-affinity `In`
expression; a resource that names its type (Ascend) gives that type. Submit:
`metadata.creationTimestamp`; start: `status.startTime`; end: a Job's
`status.completionTime` (else the time its Complete or Failed condition turned true), a
pod's latest container `finishedAt`. Objects without GPUs are skipped, as are ones that
have not finished.
Reference: Kubernetes API, Job (batch/v1) and Pod (core/v1) objects; NVIDIA GPU feature
discovery labels.
"""

from __future__ import annotations

from typing import Any

from optimizer.importers.records import BadRow, JsonItems, LayoutError, Parsed, Record, TimeParser

GPU_RESOURCES: dict[str, str | None] = {  # resource name -> the type it implies
    "nvidia.com/gpu": None,
    "amd.com/gpu": None,
    "huawei.com/Ascend910": "Ascend910",
}
TYPE_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator", "accelerator")


def parse(text: str, times: TimeParser) -> Parsed:
    out = Parsed()
    try:
        items = list(JsonItems(text).array("items"))
    except LayoutError as exc:
        out.bad.append(exc.bad_row())
        return out
    for line, obj in items:
        try:
            rec = _record(line, obj, times)
        except (ValueError, TypeError, AttributeError) as exc:
            out.bad.append(BadRow(line, f"{_name(obj)}: {exc}"))
            continue
        if isinstance(rec, str):
            out.skipped[rec] += 1
        else:
            out.records.append(rec)
    return out


def _name(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{obj.get('kind', 'object')} {name}" if name else "object"


def _record(line: int, obj: Any, times: TimeParser) -> Record | str:
    """The object's record, or why it is skipped; raises if it is malformed."""
    if not isinstance(obj, dict):
        raise ValueError("an item is a JSON object")
    kind = obj.get("kind")
    meta, spec, status = (obj.get(k) or {} for k in ("metadata", "spec", "status"))
    if kind == "Job":
        pod = (spec.get("template") or {}).get("spec") or {}
        per_pod, types = _devices(pod)
        gpus = per_pod * int(spec.get("parallelism", 1))
        end = times(status.get("completionTime")) or _condition_time(status, times)
    elif kind == "Pod":
        gpus, types = _devices(spec)
        finished = [
            times(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for c in status.get("containerStatuses") or []
        ]
        done = [t for t in finished if t is not None]
        end = max(done) if done and len(done) == len(finished) else None
    else:
        raise ValueError(f"kind {kind!r}: a listing of Jobs or Pods is expected")
    if not meta.get("name"):
        raise ValueError("no metadata.name")
    if gpus == 0:
        return "no GPUs"
    start = times(status.get("startTime"))
    if start is None or end is None:
        return "not started or not finished"
    submit = times(meta.get("creationTimestamp"))
    if submit is None:
        raise ValueError("no metadata.creationTimestamp")
    job_id = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return Record(line, job_id, gpus, types, submit, start, end)


def _devices(pod: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
    """GPUs a pod asks for, and the types it accepts."""
    gpus = 0
    implied: list[str] = []
    for c in pod.get("containers") or []:
        res = c.get("resources") or {}
        asked = res.get("limits") or res.get("requests") or {}
        for name, value in asked.items():
            if name in GPU_RESOURCES:
                if not str(value).isdigit():
                    raise ValueError(f"{name} is not a whole number: {value!r}")
                gpus += int(value)
                if GPU_RESOURCES[name] and int(value):
                    implied.append(str(GPU_RESOURCES[name]))
    types = [str(v) for k, v in (pod.get("nodeSelector") or {}).items() if k in TYPE_LABELS]
    affinity = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") in TYPE_LABELS and expr.get("operator") == "In":
                types.extend(str(v) for v in expr.get("values") or [])
    return gpus, tuple(dict.fromkeys(types or implied))


def _condition_time(status: dict[str, Any], times: TimeParser) -> Any:
    """When a Job's Complete or Failed condition turned true (a failed Job has no
    completionTime but held its devices until then)."""
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return times(cond.get("lastTransitionTime"))
    return None
