"""`python -m bench.backtest_plot BACKTEST.json OUT.png`: the plot of a `greenopt backtest`
(issue 13): day by day, the optimizer's cumulative realised saving at equal work against
each baseline, in cost, contract-based and location-based emissions (one panel each, never
mixed), one colour per forecast error level, one line style per baseline.

It lives in the benchmark tools because it needs matplotlib (the `bench` extra); the
command writes the JSON it reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from optimizer.backtest import ARM_LABELS, COMPARED, COMPARED_LABELS, PLAN

UNITS = ("{currency}", "t", "t")
PANELS = {
    k: f"{label}, {unit}" for k, label, unit in zip(COMPARED, COMPARED_LABELS, UNITS, strict=True)
}
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
STYLES = ("-", "--", ":", "-.")


def cumulative_savings(doc: dict[str, Any]) -> dict[tuple[float, str, str], list[float]]:
    """{(error, baseline, figure): cumulative baseline - plan (at equal work), by day}."""
    out: dict[tuple[float, str, str], list[float]] = {}
    for rec in sorted(doc["records"], key=lambda r: (r["error"], r["day"])):
        for b, eq in rec["plan_at_equal_work"].items():
            base = rec["arms"][b]["realised"]
            for k in COMPARED:
                run = out.setdefault((rec["error"], b, k), [])
                run.append((run[-1] if run else 0.0) + base[k] - eq["realised"][k])
    return out


def plot(doc: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on the benchmark machine
    import matplotlib.pyplot as plt

    series = cumulative_savings(doc)
    errors = sorted({e for e, _, _ in series})
    baselines = [b for b in ARM_LABELS if b != PLAN and any(b == s for _, s, _ in series)]
    fig, axes = plt.subplots(1, len(COMPARED), figsize=(15, 4.5), constrained_layout=True)
    for ax, k in zip(axes, COMPARED, strict=True):
        for i, e in enumerate(errors):
            for j, b in enumerate(baselines):
                y = series[(e, b, k)]
                ax.plot(
                    range(1, len(y) + 1),
                    y,
                    color=OKABE_ITO[i % len(OKABE_ITO)],
                    linestyle=STYLES[j % len(STYLES)],
                    label=f"error {e:.0%}, vs {ARM_LABELS[b]}",
                )
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.set_xlabel("day")
        ax.set_ylabel(
            "cumulative saving, " + PANELS[k].format(currency=doc.get("currency") or "currency")
        )
    axes[0].legend(fontsize=8)
    s = doc["settings"]
    fig.suptitle(
        f"greenopt backtest, {s['region']} from {s['start']}: the optimizer's realised saving "
        "at equal work (baseline - optimizer)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    doc = json.loads(Path(argv[0]).read_text())
    print(plot(doc, Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
