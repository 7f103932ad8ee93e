"""The dashboard's first paint and what-if round trip on the default scenario, measured in
Debian's Chromium against `greenopt serve` as a user runs it (issue 14: first paint under
2 s). Records to bench/results/ui-first-paint.json; asserts nothing.

    python -m bench.ui_paint [--loads 5] [--what-ifs 1] [--screenshots DIR] [--site wuhu]
    python -m bench.ui_paint --url http://127.0.0.1:8000 --key KEY --views workloads --repeat 7 \
        --loads 0 --what-ifs 0 --out bench/results/ui-workloads-paint.json

A fresh data directory in a temporary folder: the server solves the default scenario's first
plan (up to its time limit) before anything is measured. With `--url` and `--key` it measures
a server already running instead (one view at a time, `--repeat` fresh tabs each, median)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results" / "ui-first-paint.json"
READY_TIMEOUT_S = 600.0  # the default scenario's first plan solves within its time limit
WHATIF_TIMEOUT_MS = 300_000
SWEEP_TIMEOUT_MS = 1_200_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("greenopt serve exited while starting")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("the server was not ready in time")


# Each view: its route and the element whose appearance means it has drawn.
VIEWS = {
    "overview": ("#/overview", "#kpi-cards"),
    "map": ("#/map", "g.site circle"),
    "site": ("#/site/{site}", "#power-chart"),
    "workloads": ("#/workloads", "#gantt rect"),
    "history": ("#/history", "#plans"),
}


def _tab(browser: Any, key: str) -> Any:
    # a fresh tab with the key already in its session storage: the morning's reload
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(f"sessionStorage.setItem('greenopt.key', {json.dumps(key)})")
    return ctx


def _views(
    browser: Any, base: str, key: str, site: str, shots: Path | None, views: list[str], repeat: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds from navigation to each view drawn (a fresh tab each; the median of `repeat`
    tabs, and every tab's figure), with a screenshot of the last."""
    out, every = {}, {}
    for name in views:
        route, ready = VIEWS[name]
        times = []
        for _ in range(repeat):
            ctx = _tab(browser, key)
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(f"{base}/ui{route.format(site=site)}")
            page.wait_for_selector(ready, timeout=120_000)
            times.append(round(time.perf_counter() - t0, 3))
            ctx.close()
        every[name] = times
        out[name] = statistics.median(times)
        if shots is not None:
            ctx = _tab(browser, key)
            page = ctx.new_page()
            page.goto(f"{base}/ui{route.format(site=site)}")
            page.wait_for_selector(ready, timeout=120_000)
            page.wait_for_load_state("networkidle")  # what fills in after the first paint
            page.wait_for_timeout(300)  # let the last chart finish its frame
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            ctx.close()
    return out, every


def _measure(
    base: str,
    key: str,
    loads: int,
    what_ifs: int,
    site: str,
    shots: Path | None,
    views: list[str],
    repeat: int = 1,
    sweep: str | None = None,
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium: apt-get install -y chromium")
    paint: list[dict[str, float]] = []
    whatif_s: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        for _ in range(loads):
            ctx = _tab(browser, key)
            page = ctx.new_page()
            page.goto(f"{base}/ui")
            page.wait_for_selector("#kpi-cards", timeout=60_000)
            paint.append(
                page.evaluate(
                    """() => ({
                      kpi_cards_ms: performance.now(),
                      first_contentful_paint_ms:
                        performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
                    })"""
                )
            )
            ctx.close()
        views_s, every_s = _views(browser, base, key, site, shots, views, repeat)
        for _ in range(what_ifs):
            ctx = _tab(browser, key)
            page = ctx.new_page()
            page.goto(f"{base}/ui#/whatif")
            page.get_by_label("multiplier (×)").fill("1.5")
            t0 = time.perf_counter()
            page.get_by_role("button", name="Run what-if").click()
            page.wait_for_selector("#whatif-diff", timeout=WHATIF_TIMEOUT_MS)
            whatif_s.append(round(time.perf_counter() - t0, 1))
            if shots is not None:
                page.screenshot(path=str(shots / "what-if.png"), full_page=True)
            ctx.close()
        sweep_s = _sweep(browser, base, key, sweep, shots) if sweep else None
        browser.close()
    cards = [x["kpi_cards_ms"] for x in paint]
    return {
        "loads": paint,
        "kpi_cards_ms_median": statistics.median(cards) if cards else None,
        "kpi_cards_ms_max": max(cards) if cards else None,
        "view_drawn_s": views_s,
        "view_drawn_every_tab_s": every_s,
        "what_if_round_trip_s": whatif_s,
        "sweep_round_trip_s": sweep_s,
    }


def _sweep(browser: Any, base: str, key: str, prices: str, shots: Path | None) -> float:
    """A carbon-price sweep from the What-if page: seconds from the click to its curve."""
    ctx = _tab(browser, key)
    page = ctx.new_page()
    page.goto(f"{base}/ui#/whatif")
    page.get_by_label("carbon prices").fill(prices)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run sweep").click()
    page.wait_for_selector("#abatement", timeout=SWEEP_TIMEOUT_MS)
    took = round(time.perf_counter() - t0, 1)
    if shots is not None:
        page.locator("#sweep-result").scroll_into_view_if_needed()
        page.wait_for_timeout(300)  # the chart's last frame
        page.screenshot(path=str(shots / "cost-carbon-curve.png"), full_page=True)
    ctx.close()
    return took


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--what-ifs", type=int, default=1)
    ap.add_argument("--screenshots", type=Path, help="write a screenshot of each view here")
    ap.add_argument("--site", default="wuhu", help="the site view to open")
    ap.add_argument("--views", default=",".join(VIEWS), help="views to time, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="fresh tabs per view (median)")
    ap.add_argument("--url", help="measure this running server instead of starting one")
    ap.add_argument("--key", help="a planner key of the --url server")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where to record the figures")
    ap.add_argument("--sweep", help="carbon prices of a sweep to run and time, e.g. '0, 300, 3000'")
    args = ap.parse_args(argv)
    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    views = [v for v in args.views.split(",") if v]
    if unknown := set(views) - set(VIEWS):
        ap.error(f"unknown views {sorted(unknown)}; known: {', '.join(VIEWS)}")
    measure = functools.partial(
        _measure,
        loads=args.loads,
        what_ifs=args.what_ifs,
        site=args.site,
        shots=args.screenshots,
        views=views,
        repeat=args.repeat,
        sweep=args.sweep,
    )
    if args.url:
        if not args.key:
            ap.error("--url needs --key")
        result = _record(args.url, args.key, measure)
    else:
        result = _serve_and_measure(measure)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _record(base: str, key: str, measure: Any) -> dict[str, Any]:
    plan = httpx.get(f"{base}/plans/active", headers={"X-API-Key": key}).json()
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.node()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        "scenario": plan["summary"].get("scenario"),
        "plan": {"id": plan["id"], "status": plan["status"], "gap": plan["gap"]},
        **measure(base, key),
        "load_after": round(os.getloadavg()[0], 1),
    }


def _serve_and_measure(measure: Any) -> dict[str, Any]:
    """A fresh `greenopt serve` in a temporary data directory, measured once it is ready."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    exe = str(Path(sys.executable).with_name("greenopt"))
    with tempfile.TemporaryDirectory(prefix="greenopt-ui-bench-") as home:
        env = {**os.environ, "GREENOPT_HOME": home}
        env.pop("GREENOPT_DATABASE_URL", None)
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(base, proc)
            out = subprocess.run(
                [exe, "keys", "create", "--role", "planner", "--name", "ui-bench"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            return _record(base, out.stdout.strip().splitlines()[-1], measure)
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
