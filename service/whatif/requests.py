"""The request bodies of POST /what-if and POST /what-if/sweep."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from optimizer.whatif import POLICY_LEVERS, Overrides, OverridesIn
from service.runs import SolveSettingsIn

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers
MAX_SWEEP_VALUES = 1000  # schema-level cap; the setting whatif_max_sweep_points is lower
# how long a what-if may say it waits, s (the setting whatif_max_wait_s is lower)
MAX_WAIT_S = 86_400.0

# a sweep runs over a policy lever, or multiplies grid prices or green supply everywhere
SWEEP_MULTIPLIERS = ("price_multiplier", "green_scaling")
SWEEP_PARAMETERS = (*POLICY_LEVERS, *SWEEP_MULTIPLIERS)
if TYPE_CHECKING:
    SweepParameter = str
else:  # derived from the scenario schema's policy levers: a Literal built at run time
    SweepParameter = Literal[SWEEP_PARAMETERS]


class WhatIfRequest(BaseModel):
    """A what-if: a base, overrides, optional solver settings and how long to wait."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "overrides": {
                        "price_changes": [
                            {
                                "multiplier": 2.0,
                                "zones": ["ningxia", "guizhou"],
                                "start": "2025-07-15T08:00:00+08:00",
                                "end": "2025-07-15T20:00:00+08:00",
                            }
                        ]
                    },
                    "settings": {"time_limit_s": 60},
                    "wait_s": 120,
                    "note": "price shock in the west",
                }
            ]
        },
    )
    scenario_version_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="solve this scenario version and compare with its newest plan solved "
        "without overrides (default: the active plan's version, compared with the active plan)",
    )
    base_plan_id: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="compare with (and start from) this stored plan, solving its scenario "
        "version with these overrides (a what-if plan's own overrides are not carried over)",
    )
    overrides: OverridesIn = Field(
        default_factory=Overrides,
        description="price changes, outages and capacity changes, green scaling, accelerator "
        "mix, policy values, jobs added or removed",
    )
    settings: SolveSettingsIn = Field(default_factory=SolveSettingsIn)
    wait_s: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=MAX_WAIT_S,
        allow_inf_nan=False,
        description="how long to wait for the plan, s (default: the server's; the query "
        "parameter wins)",
    )
    note: str = Field(default="", max_length=1000)

    def digest(self) -> str:
        """Identifies the question asked (not how long the client waits for the answer), to
        tell a retry from a different request with the same Idempotency-Key (a POST /runs
        with the same key never passes for it: its content differs)."""
        content = {"what-if": self.model_dump(mode="json", exclude={"wait_s"})}
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


SweepValue = Annotated[StrictFloat, Field(allow_inf_nan=False)]


class SweepRequest(BaseModel):
    """One parameter over a list of values, each solved as a what-if."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "parameter": "carbon_price_cny_per_t",
                    "values": [0, 50, 100, 200, 500],
                    "overrides": {"min_green_share": 0.2},
                    "note": "carbon price curve",
                }
            ]
        },
    )
    parameter: SweepParameter = Field(
        description=f"a policy value ({', '.join(POLICY_LEVERS)}), or price_multiplier (grid "
        "prices at every site x value) or green_scaling (green supply at every site x value), "
        "on top of the base overrides"
    )
    values: list[SweepValue] = Field(
        min_length=1,
        max_length=MAX_SWEEP_VALUES,
        description="the values to solve for, distinct (at most whatif_max_sweep_points and "
        "queue_limit of the server)",
    )
    overrides: OverridesIn = Field(
        default_factory=Overrides, description="base overrides every point shares"
    )
    settings: SolveSettingsIn = Field(default_factory=SolveSettingsIn)
    scenario_version_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID, description="as for POST /what-if"
    )
    base_plan_id: StrictInt | None = Field(
        default=None, ge=1, le=MAX_ID, description="as for POST /what-if"
    )
    note: str = Field(default="", max_length=1000)
