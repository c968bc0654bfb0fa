"""The demo report in a real browser: Debian's headless Chromium, driven over the Chrome DevTools Protocol.

The test writes a small results store (evalkit's store writer; recorded lm-eval runs from tests/fixtures/lm_eval, a
failed cell, and hand-made perf / similarity / noise-floor tables), runs `evalkit report` on it, loads the page in
Chromium and checks: no console message or exception of level error, no network request (the page is
self-contained), every section present and visible, every figure laid out with drawn marks. It saves a screenshot
(tmp_path; `EVALKIT_REPORT_SCREENSHOT=FILE` also writes it there). The README's image is the real demo's report:
`python tests/browser_cdp.py results/report.html docs/report-demo.png` after `make demo`.

Chromium comes from scripts/browser/install-chromium.sh (idempotent; apt-get as root, like Slurm's start.sh)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from browser_cdp import DevTools, install_chromium, open_page, screenshot_clip
from paths import REPO

from evalkit.report import SECTIONS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chromium() -> str:
    return install_chromium()


@pytest.fixture()
def browser(chromium: str, tmp_path: Path) -> Iterator[DevTools]:
    with open_page(chromium, tmp_path / "profile") as page:
        yield page


def _demo_results(root: Path) -> Path:
    from unit.report.report_store import write_store  # the unit tests' store (tests/ is on pytest's pythonpath)

    write_store(root)
    (root / "perf").mkdir()
    # columns as evalkit/perf's table names them (one row per load-generator run)
    pd.DataFrame(
        {
            "model": ["smollm2-135m-instruct"] * 9,
            "format": ["bf16"] * 3 + ["w8a8"] * 3 + ["w4a16"] * 3,
            "use_case": ["chat"] * 9,
            "mode": ["sync", "constant", "throughput"] * 3,
            "rate": [None, 4.0, None] * 3,
            "output_tokens_per_s": [48.0, 260.0, 430.0, 55.0, 330.0, 590.0, 37.0, 220.0, 340.0],
            "e2el_p50_ms": [2700.0, 3900.0, 7400.0, 2300.0, 3100.0, 5400.0, 3500.0, 4600.0, 9400.0],
            "hardware": ["CPU (2 cores)"] * 9,
        }
    ).to_parquet(root / "perf" / "perf.parquet")
    pd.DataFrame({"format": ["bf16", "w8a8", "w4a16"], "usd_per_million_tokens": [2.1, 1.5, 2.6]}).to_parquet(
        root / "perf" / "cost.parquet"
    )
    return root


FIGURES_JS = """(() => {
  const sections = [...document.querySelectorAll('section')].map(s => ({
    id: s.id, height: s.getBoundingClientRect().height, text: s.innerText.length}));
  const figures = [...document.querySelectorAll('figure.plot svg')].map(svg => {
    const r = svg.getBoundingClientRect();
    return {width: r.width, height: r.height,
            marks: svg.querySelectorAll('.role-mark path, .role-mark line, .role-mark text').length};
  });
  return {sections, figures, height: document.documentElement.scrollHeight};
})()"""


def test_demo_report_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    results = _demo_results(tmp_path / "results")
    page = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "evalkit.cli", "report", "--results", str(results), "--out", str(page)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert f"report: {page.resolve()}" in done.stdout

    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", width=1100, height=1000, deviceScaleFactor=1, mobile=False)
    browser.call("Page.navigate", url=page.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    state = browser.call("Runtime.evaluate", expression=FIGURES_JS, returnByValue=True)["result"]["value"]

    errors = [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    assert not errors, errors
    fetched = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent" and e["params"]["request"]["url"] != page.resolve().as_uri()
    ]
    assert not fetched, f"the report loaded other resources: {fetched}"

    assert [s["id"] for s in state["sections"]] == [s.id for s in SECTIONS]
    assert all(s["height"] > 40 and s["text"] > 20 for s in state["sections"]), state["sections"]
    # heatmap, three forest plots (one per suite), the latency-throughput curves
    assert len(state["figures"]) == 5, state["figures"]
    for fig in state["figures"]:
        assert fig["width"] > 100 and fig["height"] > 50 and fig["marks"] > 0, fig

    shot = browser.call("Page.captureScreenshot", format="png", clip=screenshot_clip(1100, 1000))
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    (tmp_path / "report.png").write_bytes(png)
    if target := os.environ.get("EVALKIT_REPORT_SCREENSHOT"):
        Path(target).write_bytes(png)
