"""Generate the reference docs from the code, so they cannot drift from it.

* data/README.md: the schema tables between the GENERATED markers, from
  optimizer/scenario/schema.py.
* docs/model.md: the model's math, from the docstrings of the modules in
  optimizer/model/build.py's MODULES list, in build order, then the short-job lanes of
  optimizer/flexible.py (a step before the model).
* docs/bundle.md: the bundle reference between the GENERATED markers, from
  optimizer/contract.py.

Run `python docs/generate.py` after changing either; tests/test_docs.py fails when the
committed files differ from what this produces.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer import contract, flexible  # noqa: E402
from optimizer.model.build import MODULES  # noqa: E402
from optimizer.scenario import schema  # noqa: E402
from optimizer.scenario.schema import REQUIRED, Column  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED: schema (python docs/generate.py) -->"
END = "<!-- END GENERATED: schema -->"


def _default(c: Column) -> str:
    if c.default is REQUIRED:
        return "required"
    if c.default is None or c.default == "":
        return "empty"
    if isinstance(c.default, bool):
        return str(c.default).lower()
    return str(c.default)


def _row(c: Column) -> str:
    rng = []
    if c.min is not None:
        rng.append(f"{'>' if c.min_exclusive else '>='} {c.min:g}")
    if c.max is not None:
        rng.append(f"<= {c.max:g}")
    meaning = c.meaning + (f" ({', '.join(rng)})" if rng else "")
    return f"| `{c.name}` | {c.dtype} | {c.unit or '-'} | {_default(c)} | {meaning} |"


def schema_markdown() -> str:
    head = "| column | type | unit | default | meaning |\n|---|---|---|---|---|"
    parts = [
        BEGIN,
        "",
        f"### `{schema.MANIFEST_FILE}`",
        "",
        "Top-level keys:",
        "",
        head.replace("column", "key"),
    ]
    parts += [_row(c) for c in schema.MANIFEST_KEYS]
    parts += ["", "`[policy]` table:", "", head.replace("column", "key")]
    parts += [_row(c) for c in schema.POLICY_KEYS]
    for t in schema.TABLES:
        parts += [
            "",
            f"### `{t.file}`{' (optional)' if t.optional else ''}",
            "",
            t.meaning + f" Key: {', '.join(t.key)}.",
            "",
            head,
        ]
        parts += [_row(c) for c in t.columns]
    parts += ["", END]
    return "\n".join(parts)


BUNDLE_BEGIN = "<!-- BEGIN GENERATED: bundle contract (python docs/generate.py) -->"
BUNDLE_END = "<!-- END GENERATED: bundle contract -->"


def _codes(names: tuple[str, ...]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def bundle_markdown() -> str:
    """The summary keys, the KPIs and every bundle table, from optimizer/contract.py."""
    parts = [
        BUNDLE_BEGIN,
        "",
        "## summary.json",
        "",
        "| key | unit | status | meaning |",
        "|---|---|---|---|",
    ]
    kpis = set(contract.KPI_KEYS)
    parts += [
        f"| `{k.name}` | {k.unit} | {k.status} | {k.meaning} |"
        for k in contract.SUMMARY
        if k.name not in kpis
    ]
    parts += [
        "| the KPIs | | | every KPI below, as a top-level key |",
        "",
        "## KPIs",
        "",
        "Top-level keys of summary.json, and the keys of each plan under `baselines`.",
        "",
        "| KPI | unit | status | accounting | meaning |",
        "|---|---|---|---|---|",
    ]
    parts += [
        f"| `{f.name}` | {f.metadata['unit']} | {f.metadata['status']} | "
        f"{f.metadata['accounting']} | {f.metadata['meaning']} |"
        for f in contract.KPIS
    ]
    parts += [
        "",
        "## Green cases",
        "",
        f"summary.json `green_cases` has one object per case ({_codes(contract.GREEN_CASES)}) "
        "with these keys. " + (contract.CaseKpis.__doc__ or "").replace("\n    ", " ").strip(),
        "",
        "| key | unit | accounting | meaning |",
        "|---|---|---|---|",
    ]
    parts += [
        f"| `{f.name}` | {f.metadata['unit']} | {f.metadata['accounting']} | "
        f"{f.metadata['meaning']} |"
        for f in dataclasses.fields(contract.CaseKpis)
    ]
    parts += [
        "",
        f"Plan statuses: {_codes(contract.PLAN_STATUSES)}. Job statuses: "
        f"{_codes(contract.JOB_STATUSES)}; service statuses: {_codes(contract.SERVICE_STATUSES)}.",
    ]
    for t in contract.TABLES:
        parts += ["", f"## {t.file} — {t.rows}" + (" (extra)" if t.status == "extra" else "")]
        if t.note:
            parts += ["", t.note]
        parts += ["", "| column | type | unit | status | meaning |", "|---|---|---|---|---|"]
        parts += [
            f"| `{c.name}` | {c.dtype} | {c.unit} | {c.status} | {c.meaning} |" for c in t.columns
        ]
    parts += ["", BUNDLE_END]
    return "\n".join(parts)


def updated_bundle_doc(text: str) -> str:
    if BUNDLE_BEGIN not in text or BUNDLE_END not in text:
        raise ValueError("docs/bundle.md lacks the GENERATED markers")
    head, rest = text.split(BUNDLE_BEGIN, 1)
    _, tail = rest.split(BUNDLE_END, 1)
    return head + bundle_markdown() + tail


def _rst_to_markdown(doc: str) -> str:
    """The docstrings' reST (math blocks, simple tables, roles) as GitHub markdown."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == ".. math::":
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            # one display per equation (blank-line separated in the docstring)
            eq: list[str] = []
            for b in [*block, ""]:
                if b.strip():
                    eq.append(b.replace("&&", r"\qquad"))
                elif eq:
                    out += ["```math", *eq, "```", ""]
                    eq = []
            continue
        if re.fullmatch(r"=+( +=+)+", line.strip()):
            border = line
            spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]
            rows: list[list[str]] = []
            i += 1
            while i < len(lines) and lines[i].strip():
                if not re.fullmatch(r"=+( +=+)+", lines[i].strip()):
                    cells = [
                        lines[i][
                            a : (spans[k + 1][0] if k + 1 < len(spans) else len(lines[i]))
                        ].strip()
                        for k, (a, _) in enumerate(spans)
                    ]
                    rows.append([_roles(c) for c in cells])
                i += 1
            if rows:
                out.append("| " + " | ".join(rows[0]) + " |")
                out.append("|" + "---|" * len(rows[0]))
                out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
            continue
        out.append(_roles(line))
        i += 1
    return "\n".join(out)


def _roles(text: str) -> str:
    text = re.sub(r":math:`([^`]*)`", r"$\1$", text)
    text = re.sub(r"``([^`]*)``", r"`\1`", text)
    return text.replace("\\-", "-")


def model_markdown() -> str:
    parts = [
        "# The model",
        "",
        "Generated from the docstrings of `optimizer/model/` by `python docs/generate.py`;",
        "the modules are listed in build order (`optimizer/model/build.py`). Units: MW for power",
        "(an hour-long step makes MW equal to MWh), CNY for money, kgCO2/MWh for intensity.",
    ]
    for mod in MODULES:
        name = mod.__name__.rsplit(".", 1)[-1]
        parts += ["", f"## {name}", "", inspect.cleandoc(mod.__doc__ or "")]
        parts += ["", _rst_to_markdown(inspect.cleandoc(mod.add_to_model.__doc__ or ""))]
    # a step before the model: short jobs aggregated into lanes, which it places as jobs
    parts += ["", "## flexible (before the model: optimizer/flexible.py)"]
    parts += ["", inspect.cleandoc(flexible.__doc__ or "")]
    parts += ["", _rst_to_markdown(inspect.cleandoc(flexible.aggregate.__doc__ or ""))]
    return "\n".join(parts) + "\n"


def updated_data_readme(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError("data/README.md lacks the GENERATED markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + schema_markdown() + tail


def main() -> None:
    readme = ROOT / "data" / "README.md"
    readme.write_text(updated_data_readme(readme.read_text()))
    (ROOT / "docs" / "model.md").write_text(model_markdown())
    bundle = ROOT / "docs" / "bundle.md"
    bundle.write_text(updated_bundle_doc(bundle.read_text()))
    print("updated data/README.md, docs/model.md and docs/bundle.md")


if __name__ == "__main__":
    main()
