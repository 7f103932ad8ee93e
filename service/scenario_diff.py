"""What a data change does to a table: rows added, removed and changed, matched by the
table's key, and whether it removes so much that the client must confirm it. Pure functions
on text tables, so a dry run, the no-op check and the guard against gutting a table all give
the same answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from optimizer.scenario import schema

# A change that removes more than this share of a table's rows (emptying it included) is
# refused unless the client confirms it: an empty or truncated upload is far likelier a
# mistake than an intent, and the nightly would plan whatever became current.
MAX_UNCONFIRMED_REMOVAL_SHARE = 0.5

# the scenario reader's spellings of a boolean cell (optimizer/scenario/load.py)
TRUE_TEXT = frozenset({"true", "1", "yes", "y", "t"})
FALSE_TEXT = frozenset({"false", "0", "no", "n", "f"})
_TS_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"
_SEP = "\x1f"  # joins the cells of a row into one comparable string


@dataclass(frozen=True)
class TableDiff:
    """One table before and after a change; rows are matched by the table's key."""

    table: str
    rows_before: int
    rows_after: int
    added: int
    removed: int
    changed: int

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def needs_confirmation(self) -> bool:
        """It empties the table or removes more than half of its rows."""
        return self.removed > self.rows_before * MAX_UNCONFIRMED_REMOVAL_SHARE

    def describe(self) -> str:
        return (
            f"{self.table}: {self.rows_before} row(s) before, {self.rows_after} after "
            f"({self.added} added, {self.removed} removed, {self.changed} changed)"
        )


def table_diff(table: str, before: pd.DataFrame, after: pd.DataFrame, tz: str) -> TableDiff:
    """Compare two versions of a table as the scenario reads them: cells equal as values
    (16, 16.0 and " 16" are the same number; an instant in two spellings is one instant),
    columns matched by name, row order ignored."""
    spec = schema.TABLES_BY_NAME[table]
    columns = sorted(set(before.columns) | set(after.columns))
    rows_b = canonical_rows(before.reindex(columns=columns, fill_value=""), spec, tz)
    rows_a = canonical_rows(after.reindex(columns=columns, fill_value=""), spec, tz)
    keys_b, keys_a = row_keys(before, spec, tz), row_keys(after, spec, tz)
    if spec.key and keys_b.is_unique and keys_a.is_unique:
        old = dict(zip(keys_b, rows_b, strict=True))
        new = dict(zip(keys_a, rows_a, strict=True))
        added = len(new.keys() - old.keys())
        removed = len(old.keys() - new.keys())
        changed = sum(old[k] != new[k] for k in old.keys() & new.keys())
    else:  # no key (or a broken one): compare whole rows as a multiset
        cb, ca = Counter(rows_b), Counter(rows_a)
        added, removed, changed = sum((ca - cb).values()), sum((cb - ca).values()), 0
    return TableDiff(table, len(before), len(after), added, removed, changed)


def canonical_rows(df: pd.DataFrame, spec: schema.Table, tz: str) -> list[str]:
    """One string per row, its cells in a canonical spelling for their type."""
    if df.empty:
        return []
    known = {c.name: c for c in spec.columns}
    parts = []
    for col in df.columns:
        cells = df[col].astype(str).str.strip()
        c = known.get(col)
        if c is not None and c.dtype in ("int", "float"):
            num = pd.to_numeric(cells.where(cells != "", None), errors="coerce")
            cells = cells.where(num.isna(), num.map(lambda v: repr(float(v))))
        elif c is not None and c.dtype == "bool":
            low = cells.str.lower()
            cells = low.where(~low.isin(TRUE_TEXT), "true").where(~low.isin(FALSE_TEXT), "false")
        elif c is not None and c.dtype == "timestamp":
            cells = instants(cells, tz)
        parts.append(cells.reset_index(drop=True))
    return list(_joined(parts))


def row_keys(df: pd.DataFrame, spec: schema.Table, tz: str) -> pd.Series:
    """One comparable string per row from its key columns; timestamps compared as instants
    (2025-07-15T00:00+08:00, 2025-07-14T16:00Z and naive local 2025-07-15T00:00 match)."""
    parts = []
    for k in spec.key:
        col = df[k].astype(str).str.strip() if k in df.columns else pd.Series("", index=df.index)
        if spec.column(k).dtype == "timestamp":
            col = instants(col, tz)
        parts.append(col.reset_index(drop=True))
    if not parts:
        return pd.Series([""] * len(df), dtype=str)
    return _joined(parts)


def _joined(parts: list[pd.Series]) -> pd.Series:
    out = parts[0]
    for p in parts[1:]:
        out = out + _SEP + p
    return out


def instants(text_col: pd.Series, tz: str) -> pd.Series:
    """Timestamps as UTC ISO text (naive ones are local to `tz`); unparseable text stays."""
    out = text_col.copy()
    has_off = text_col.str.contains(_TS_OFFSET, regex=True)
    if has_off.any():
        parsed = pd.to_datetime(text_col[has_off], utc=True, errors="coerce", format="ISO8601")
        ok = parsed.notna()
        out[has_off & ok.reindex(out.index, fill_value=False)] = parsed[ok].map(
            lambda t: t.isoformat()
        )
    naive = ~has_off & (text_col != "")
    if naive.any():
        try:
            local = pd.to_datetime(text_col[naive], errors="coerce", format="ISO8601")
            utc = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
            ok = utc.notna()
            out[naive & ok.reindex(out.index, fill_value=False)] = utc[ok].map(
                lambda t: t.isoformat()
            )
        except (TypeError, ValueError, AttributeError):
            pass  # unparseable text stays as given; the validator reports it
    return out
