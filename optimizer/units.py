"""Unit conversions used across the library: one name, one value, one home.

Names say what they convert (`KW_PER_MW` kW in one MW). The validator imports these too: a
conversion factor is a fact of arithmetic, not a planner rule, so sharing it keeps the
validator independent of the model's decisions.
"""

from __future__ import annotations

KW_PER_MW = 1000.0
W_PER_KW = 1000.0
KG_PER_T = 1000.0
SECONDS_PER_HOUR = 3600.0
TOKENS_PER_MTOKEN = 1e6
