"""Plain unit tests of the dashboard's server side: the map outline's TopoJSON decoding
(service/ui/outline.py) on a topology small enough to decode by hand, the shipped outline,
and the serve banner's dashboard line (the browser tests are in tests/ui/)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from service import cli
from service.ui.outline import OUT, convert


def test_arcs_are_delta_decoded_scaled_and_reversed_by_negative_index() -> None:
    topo = {
        "transform": {"scale": [0.5, 0.25], "translate": [100.0, 20.0]},
        # arc 0: (0,0) -> (2,0) -> (2,4); arc 1: (2,4) -> (0,0)
        "arcs": [[[0, 0], [2, 0], [0, 4]], [[2, 4], [-2, -4]]],
        "objects": {
            "countries": {
                "geometries": [
                    {"type": "Polygon", "id": "1", "properties": {"name": "A"}, "arcs": [[0, 1]]},
                    # ~0 is arc 0 backwards: (2,4) -> (2,0) -> (0,0), then arc 1 reversed
                    {"type": "Polygon", "id": "2", "properties": {"name": "B"}, "arcs": [[~1, ~0]]},
                ]
            }
        },
    }
    a, b = convert(topo)["countries"]
    assert a == {"id": "1", "name": "A", "rings": [[[100, 20], [101, 20], [101, 21], [100, 20]]]}
    assert b["rings"] == [[[100, 20], [101, 21], [101, 20], [100, 20]]]


def test_the_shipped_outline_has_the_countries_the_scenarios_lie_in() -> None:
    data = json.loads(OUT.read_text())
    names = {c["name"] for c in data["countries"]}
    assert {"China", "Germany", "United States of America"} <= names
    assert "public domain" in data["licence"]


def test_the_serve_banner_prints_the_dashboard_url(capsys: pytest.CaptureFixture[str]) -> None:
    settings = SimpleNamespace(
        host="0.0.0.0",
        port=8123,
        sqlite_path=Path("/tmp/greenopt.db"),
        home=Path("/tmp"),
        database_url="sqlite:////tmp/greenopt.db",
        scheduler_in_process=False,
    )
    cli._banner(settings, None, None)
    assert "dashboard:  http://127.0.0.1:8123/ui" in capsys.readouterr().out
