"""The one check of a JSON request body before any route reads it: UTF-8, JSON, at most
`MAX_JSON_DEPTH` levels deep, finite numbers. `malformed_json` says what is
wrong and where (byte, or line and column), so a client gets a 400 naming the fault instead of
a vague parsing error (or a RecursionError deep in the parser)."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 64  # levels of arrays and objects; no request of the API needs ten


_WORDS = ("true", "false", "null")


class _Refused(ValueError):
    """A constant the JSON grammar of the API does not allow."""


def _refuse_constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number (numbers must be finite)")


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"line {line} column {column}"


def _shape_problem(value: Any) -> str | None:
    """Too deep, or a number too large for a double (1e400 parses as infinity). Walks the
    parsed value with a stack: a scan of the text is several times slower."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif isinstance(child, float) and not math.isfinite(child):
                return "body is not valid JSON: a number is out of range (numbers must be finite)"
    return None


def malformed_json(body: bytes) -> str | None:
    """What is wrong with a JSON request body, or None if nothing is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"body is not valid UTF-8 at byte {exc.start}"
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # the C parser recurses: very deep input ends here
        return f"JSON nesting deeper than {MAX_JSON_DEPTH} levels"
    except json.JSONDecodeError as exc:
        rest = text[exc.pos :].rstrip()
        if not rest or any(word.startswith(rest) for word in _WORDS):  # cut off in a word
            return f"JSON ends early at {_where(text, len(text))}"
        if exc.msg.startswith("Unterminated string"):
            return f"JSON ends early: the string at {_where(text, exc.pos)} is never closed"
        return f"body is not valid JSON: {exc.msg} at {_where(text, exc.pos)}"
    except _Refused as exc:
        return f"body is not valid JSON: {exc}"
    except ValueError:  # Python refuses to convert integers of more than 4300 digits
        return "body is not valid JSON: an integer has too many digits"
    if isinstance(value, float) and not math.isfinite(value):
        return "body is not valid JSON: a number is out of range (numbers must be finite)"
    return _shape_problem(value) if isinstance(value, dict | list) else None
