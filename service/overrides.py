"""`optimizer.whatif.Overrides` over HTTP: parse them from JSON and describe them in OpenAPI.

Overrides carries time windows typed `pd.Timestamp` with `arbitrary_types_allowed`, so as it
stands (1) pydantic rejects an ISO string for `start`/`end` and (2) it has no JSON schema.
Both are reported against optimizer/whatif.py; until it is fixed there, this module turns
window strings into timestamps before validating, and renders those fields as date-time
strings in the schema. Once `_Window` accepts strings, `_coerce_windows` is a no-op.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pandas as pd
from pydantic import ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from optimizer.scenario import InputValidationError, Problem
from optimizer.whatif import Overrides

_WINDOW_LISTS = ("price_changes", "capacity_changes")


class _TimestampAsString(GenerateJsonSchema):
    def is_instance_schema(self, schema: core_schema.IsInstanceSchema) -> JsonSchemaValue:
        if schema["cls"] is pd.Timestamp:
            return {"type": "string", "format": "date-time"}
        return super().is_instance_schema(schema)


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local `$defs` references inlined (OpenAPI resolves `$ref` from
    the document root, not from where the schema is embedded)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = copy.deepcopy(defs[ref.split("/")[-1]])
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **rest})
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema)


OVERRIDES_JSON_SCHEMA: dict[str, Any] = _inline(
    Overrides.model_json_schema(schema_generator=_TimestampAsString)
)


def _coerce_windows(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for name in _WINDOW_LISTS:
        items = out.get(name)
        if not isinstance(items, list):
            continue
        fixed = []
        for item in items:
            if isinstance(item, dict):
                item = dict(item)
                for k in ("start", "end"):
                    v = item.get(k)
                    if isinstance(v, str):
                        # unparseable text stays as it is: pydantic reports the field
                        with contextlib.suppress(ValueError):
                            item[k] = pd.Timestamp(v)
            fixed.append(item)
        out[name] = fixed
    return out


def parse_overrides(data: dict[str, Any] | None) -> Overrides:
    """Validated overrides; every fault reported as a problem of the `overrides` input."""
    if not data:
        return Overrides.model_validate({})
    try:
        return Overrides.model_validate(_coerce_windows(data))
    except ValidationError as exc:
        raise InputValidationError(
            [
                Problem(
                    "overrides",
                    str(e.get("msg", "invalid")),
                    column=".".join(str(x) for x in e.get("loc", ())) or None,
                )
                for e in exc.errors()
            ]
        ) from None


def overrides_json(ov: Overrides) -> dict[str, Any]:
    """Overrides as plain JSON (only what differs from the defaults)."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        return v

    return conv(ov.model_dump(mode="python", exclude_defaults=True))
