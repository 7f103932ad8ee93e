"""Rebuilds the dashboard's map outline, `static/map/countries-110m.json`, from the npm
package world-atlas (Natural Earth admin-0 countries, 1:110m, public domain; world-atlas
ISC): decodes the TopoJSON arcs into plain rings of [lon, lat] rounded to 0.1 degree and
drops the points that rounding makes repeat. Run once when the source changes:

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python -m service.ui.outline package/countries-110m.json

The dashboard only reads the output (the browser projects it); this module is never
imported at run time."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "static" / "map" / "countries-110m.json"
DECIMALS = 1  # 0.1 degree is about 11 km: finer than a 1:110m outline holds


def _arcs(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The topology's arcs in degrees (delta-decoded, then un-quantised)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            pts.append((x * sx + tx, y * sy + ty))
        out.append(pts)
    return out


def _ring(arcs: list[list[tuple[float, float]]], ids: list[int]) -> list[list[float]]:
    pts: list[list[float]] = []
    for i in ids:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        for lon, lat in arc[1:] if pts else arc:
            p = [round(lon, DECIMALS), round(lat, DECIMALS)]
            if not pts or p != pts[-1]:
                pts.append(p)
    return pts


def convert(topo: dict[str, Any]) -> dict[str, Any]:
    arcs = _arcs(topo)
    countries = []
    for g in topo["objects"]["countries"]["geometries"]:
        polys = g.get("arcs", [])
        if g["type"] == "Polygon":
            polys = [polys]
        rings = [r for poly in polys for ring in poly if len(r := _ring(arcs, ring)) >= 4]
        if rings:
            countries.append({"id": g.get("id"), "name": g["properties"]["name"], "rings": rings})
    return {
        "source": "Natural Earth admin-0 countries 1:110m v4.1.0 via world-atlas 2.0.2",
        "licence": "Natural Earth: public domain; world-atlas: ISC (LICENSE-world-atlas)",
        "countries": countries,
    }


if __name__ == "__main__":
    data = convert(json.loads(Path(sys.argv[1]).read_text()))
    OUT.write_text(json.dumps(data, separators=(",", ":")))
    print(f"{OUT}: {len(data['countries'])} countries, {OUT.stat().st_size} bytes")
