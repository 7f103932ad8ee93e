"""What a validation run reports: each `Violation` (check family, rule, message, where) and
the `ValidationReport` holding them with what was checked and recomputed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

CHECKS = (
    "bundle",
    "jobs",
    "services",
    "churn",
    "capacity",
    "power",
    "totals",
    "policy",
    "robust",
)
"""The check families, in the order their violations are reported; every `Violation.check`
is one of them."""


@dataclass(frozen=True)
class Violation:
    """One broken limit or wrong number, and where."""

    check: str  # one of CHECKS
    rule: str  # the rule within the check, e.g. "contiguous", "latency", "grid_limit"
    message: str
    workload_id: str | None = None
    site_id: str | None = None
    accelerator: str | None = None
    hour: int | None = None
    timestamp: str | None = None
    table: str | None = None
    expected: Any = None
    actual: Any = None

    def location(self) -> str:
        parts = [
            f"{name} {value}"
            for name, value in (
                ("table", self.table),
                ("workload", self.workload_id),
                ("site", self.site_id),
                ("accelerator", self.accelerator),
                ("hour", self.timestamp or self.hour),
            )
            if value not in (None, "")
        ]
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location()
        return f"[{self.check}/{self.rule}] {where + ': ' if where else ''}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ValidationReport:
    violations: list[Violation]
    checked: dict[str, int]  # items each check looked at
    recomputed: dict[str, Any]  # KPIs recomputed from the tables
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_check(self, check: str) -> list[Violation]:
        return [v for v in self.violations if v.check == check]

    def rules(self) -> set[tuple[str, str]]:
        """(check, rule) of every violation."""
        return {(v.check, v.rule) for v in self.violations}

    def raise_if_failed(self) -> None:
        if self.violations:
            raise PlanValidationError(self)

    def __str__(self) -> str:
        looked = ", ".join(f"{c} {n}" for c, n in self.checked.items())
        if self.ok:
            return f"plan valid ({looked})"
        per = Counter(v.check for v in self.violations)
        head = f"{len(self.violations)} violation(s) ({', '.join(f'{c}: {n}' for c, n in per.items())}; checked {looked}):"
        return "\n".join([head, *(f"  - {v}" for v in self.violations)])


class PlanValidationError(ValueError):
    """The plan breaks limits or misreports totals; `violations` lists every one."""

    def __init__(self, report: ValidationReport):
        self.report = report
        self.violations = list(report.violations)
        super().__init__(str(report))
