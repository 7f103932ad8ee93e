"""Job-history importers: each format's test file (written for these tests, in the real
layout) gives the expected jobs; every bad row is named by its line; the import is
checked by the scenario loader and written with its rules in the description."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from optimizer.importers import ImportRules, import_jobs
from optimizer.scenario import load_scenario
from service.cli import EXIT_BAD_INPUT, app

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"  # starts 2025-07-15T00:00+08:00, 24 h; H100, A100, H20
FILES = ROOT / "tests" / "data" / "importers"
TYPES = {
    "v100": ("A100",),
    "V100M16": ("A100",),
    "V100M32": ("A100",),
    "NVIDIA-H100-80GB-HBM3": ("H100",),
    "NVIDIA-A100-SXM4-80GB": ("A100",),
}
ANY = ("H100", "A100", "H20")


def jobs_of(fmt: str, file: str, **kw: object) -> dict[str, tuple]:
    r = import_jobs(FILES / file, fmt, DEMO, ImportRules(type_map=TYPES), skip_bad=True, **kw)  # type: ignore[arg-type]
    assert r.scenario is not None
    new = r.scenario.jobs[-r.imported :]
    return {
        j.job_id: (
            j.accelerators,
            j.gang,
            round(j.work_device_hours, 3),
            j.release,
            j.deadline,
            j.preemptible,
        )
        for j in new
    }


def bad_lines(fmt: str, file: str) -> dict[int, str]:
    r = import_jobs(FILES / file, fmt, DEMO, ImportRules(type_map=TYPES))
    assert r.scenario is None  # bad rows: nothing to write unless they are skipped
    return {b.line: b.message for b in r.bad}


def test_slurm_sacct_parsable2() -> None:
    # the first submission (09:12 local) lands on the horizon's first day; steps, CPU-only
    # and unfinished jobs are skipped; A100 work counts at its relative throughput 0.4
    assert jobs_of("slurm", "sacct.txt") == {
        "4101": (("H100",), 8, 48.0, 10, 22, True),  # 8 x 6 h; deadline 10 h + 2 x 6 h
        "4102_1": (ANY, 1, 0.5, 10, 11, True),  # untyped: any type; 30 min -> 1 h window
        "4104": (("A100",), 4, 3.2, 11, 15, True),  # 4 x 2 h x 0.4
        "4108": (("A100",), 2, 0.8, 14, 16, True),  # v100 mapped to A100
    }
    bad = bad_lines("slurm", "sacct.txt")
    assert set(bad) == {9, 10}
    assert "5 fields, the header has 10" in bad[9]
    assert "not a timestamp: '2025-13-40T25:00:00'" in bad[10]


def test_an_unmapped_type_is_a_bad_row_naming_the_type() -> None:
    r = import_jobs(FILES / "sacct.txt", "slurm", DEMO, ImportRules(), skip_bad=True)
    (b,) = [b for b in r.bad if b.line == 11]
    assert "GPU type 'v100' maps to no accelerator" in b.message
    assert r.scenario is not None and "4108" not in {j.job_id for j in r.scenario.jobs}
    assert r.skipped == {"job steps": 2, "no GPUs": 1, "not started or not finished": 1}


def test_philly_job_log() -> None:
    # 16 GPUs on two servers in the last attempt, from the first start to the last end
    long_h = (pd.Timestamp("2017-10-02 12:20") - pd.Timestamp("2017-10-02 08:10")) / pd.Timedelta(
        hours=1
    )
    assert jobs_of("philly", "philly_cluster_job_log.json") == {
        "application_1506638472019_00001": (ANY, 16, round(16 * long_h, 3), 9, 18, True),
        "application_1506638472019_00002": (ANY, 1, 0.25, 9, 10, True),
    }
    assert list(bad_lines("philly", "philly_cluster_job_log.json")) == [52]


def test_alibaba_gpu_2023_pod_list() -> None:
    # seconds from the trace start; 30,000 s = 08:20 on day 0, shifted onto the horizon
    assert jobs_of("alibaba", "openb_pod_list.csv") == {
        "openb-pod-0001": (ANY, 8, round(8 * 13800 / 3600, 3), 9, 17, True),
        "openb-pod-0002": (ANY, 1, 0.5, 9, 10, True),  # BE: preemptible
        "openb-pod-0003": (("A100",), 1, round(7195 / 3600 * 0.4, 3), 9, 13, False),  # LS
    }
    bad = bad_lines("alibaba", "openb_pod_list.csv")
    assert set(bad) == {6, 8}
    assert "not a whole number" in bad[6] and "wrong number of fields" in bad[8]


def test_kubernetes_jobs_and_pods() -> None:
    assert jobs_of("kubernetes", "kubectl_get_jobs.json") == {
        # 4 pods x 8 GPUs, H100 or A100 by node affinity; 6 h on the first type (H100)
        "research/llm-pretrain": (("H100", "A100"), 32, 192.0, 9, 21, True),
        # a failed Job held its device until its Failed condition
        "research/nightly-eval": (("H20",), 1, 0.125, 10, 11, True),
    }
    assert jobs_of("kubernetes", "kubectl_get_pods.json") == {
        "tuning/sft-worker-0": (("H100",), 2, round(2 * 119 / 60, 3), 12, 16, True),
    }
    bad = bad_lines("kubernetes", "kubectl_get_pods.json")
    assert list(bad) == [57] and "Pod bad-request" in bad[57]


def test_a_broken_json_document_names_its_line(tmp_path: Path) -> None:
    text = (FILES / "philly_cluster_job_log.json").read_text().splitlines()
    broken = tmp_path / "log.json"
    broken.write_text("\n".join(text[:30] + ["    },,"] + text[31:]))
    r = import_jobs(broken, "philly", DEMO, ImportRules())
    (b,) = r.bad
    assert b.line == 31 and "not valid JSON" in b.message


def test_import_jobs_writes_jobs_the_loader_accepts_with_the_rules_stated(tmp_path: Path) -> None:
    d = tmp_path / "sc"
    shutil.copytree(DEMO, d)
    args = ["scenario", "import-jobs", str(d), str(FILES / "openb_pod_list.csv"), "-f", "alibaba"]
    before = (d / "jobs.csv").read_text()
    refused = CliRunner().invoke(app, [*args, "--map", "V100M16=A100"])
    assert refused.exit_code == EXIT_BAD_INPUT
    for line in (6, 8, 4):  # V100M32 unmapped on line 4
        assert f"line {line}:" in refused.output
    assert (d / "jobs.csv").read_text() == before  # a refused import changes nothing

    ok = CliRunner().invoke(
        app,
        [
            *args,
            "--map",
            "V100M16=A100",
            "--map",
            "V100M32=A100",
            "--skip-bad",
            "--deadline-slack",
            "3",
        ],
    )
    assert ok.exit_code == 0, ok.output
    sc = load_scenario(d)
    assert sorted(j.job_id for j in sc.jobs) == [
        "openb-pod-0001",
        "openb-pod-0002",
        "openb-pod-0003",
    ]
    assert "deadline = release hour + max(1 h, 3 x run time)" in sc.description
    assert "V100M16=A100" in sc.description and sc.description.count("Jobs imported from") == 1


def test_rows_the_loader_rejects_are_reported_at_their_source_line() -> None:
    r = import_jobs(
        FILES / "sacct.txt",
        "slurm",
        DEMO,
        ImportRules(type_map=TYPES, kind="serving"),
        skip_bad=True,
    )
    kinds = {b.line for b in r.bad if "unknown kind 'serving'" in b.message}
    assert kinds == {2, 5, 7, 11}  # the four jobs, at their lines in sacct.txt
    assert r.scenario is not None and not {"4101", "4108"} & {j.job_id for j in r.scenario.jobs}


def test_unknown_format_and_bad_slack_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'lsf'"):
        import_jobs(FILES / "sacct.txt", "lsf", DEMO)
    with pytest.raises(ValueError, match="at least 1"):
        ImportRules(deadline_slack=0.5)


def test_an_imported_history_plans_and_validates(tmp_path: Path) -> None:
    from optimizer import SolverSettings, optimize
    from optimizer.importers import write_imported
    from optimizer.validate import validate_plan

    d = tmp_path / "sc"
    shutil.copytree(DEMO, d)
    r = import_jobs(FILES / "kubectl_get_jobs.json", "kubernetes", d, ImportRules(type_map=TYPES))
    write_imported(r, d)
    sc = load_scenario(d)
    plan = optimize(sc, SolverSettings(backend="matrix", threads=1, seed=0, time_limit_s=60))
    validate_plan(sc, plan).raise_if_failed()
    wl = plan.workloads.set_index("workload_id")
    # both fit the demo fleet (32 H100 at one site, 1 H20) and are planned
    assert (wl.loc[["research/llm-pretrain", "research/nightly-eval"], "status"] == "placed").all()


def test_parse_errors_and_loader_rejections_are_reported_together() -> None:
    r = import_jobs(FILES / "sacct.txt", "slurm", DEMO, ImportRules(type_map=TYPES, kind="serving"))
    assert r.scenario is None
    assert [b.line for b in r.bad] == [2, 5, 7, 9, 10, 11]  # kinds, field count, timestamp
