"""The report in a real browser: Debian's chromium, driven by selenium through chromium-driver.

Two reports are opened: one from a real run (a small CPU sweep measured here and stored in SQLite,
reported by the `nnscale report` command) and the synthetic one with every kind of plot (scaling,
prediction, time to train, frameworks). In each, every plot must be drawn (a non-empty box with
visible text), every table must have rows, no script may exist, and the console must be free of
errors (a CSP violation, a failed load or a script error would all show there).

Without chromium the test is skipped on a user's machine, and fails under CI=true
(scripts/ci_browser.sh installs it). Selenium never downloads anything: the driver's path is given,
which skips Selenium Manager.

Set NNSCALE_REPORT_SCREENSHOT=docs/report-screenshot.png to also save a screenshot of the
synthetic report's top (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import synthetic as S

from nnscale.cli import main
from nnscale.report import build_report, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not CHROMIUM or not DRIVER:
        return "chromium and chromium-driver are not installed (scripts/ci_browser.sh)"
    return None


# xdist_group: one worker starts the browser (module fixture) and runs every test of it.
pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--window-size=1280,1700",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


# Boxes of what the page drew, measured by the browser's own layout.
PAGE_FACTS = """
const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
return {
  plots: [...document.querySelectorAll('svg.plot')].map(s => ({
    id: s.dataset.figure, box: box(s),
    texts: [...s.querySelectorAll('text')].filter(t => box(t)[0] > 0).length,
    paths: s.querySelectorAll('path').length})),
  tables: [...document.querySelectorAll('table')].map(t => ({
    id: t.id, rows: t.tBodies[0].rows.length,
    filled: [...t.tBodies[0].querySelectorAll('td')].filter(c => c.textContent.trim()).length})),
  scripts: document.scripts.length,
  title: document.title,
};
"""


def open_and_check(driver, html: Path, plots: set[str]) -> dict:
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(html.resolve().as_uri())
    facts = driver.execute_script(PAGE_FACTS)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    seen = json.dumps(facts, indent=1)  # what the browser saw, in every failure message
    assert not errors, f"console errors: {errors}"
    assert facts["scripts"] == 0, seen
    assert {p["id"] for p in facts["plots"]} == plots, seen
    for p in facts["plots"]:
        width, height = p["box"]
        assert width > 300 and height > 150, f"{p['id']} has no room: {seen}"
        # at least the title and both axis labels drawn, and the axes and a curve
        assert p["texts"] >= 3 and p["paths"] >= 3, f"{p['id']} is not drawn: {seen}"
    assert facts["tables"], "no table"
    for t in facts["tables"]:
        assert t["rows"] > 0 and t["filled"] > 0, f"empty table {t['id']}: {seen}"
    return facts


def test_report_of_a_real_run(browser, tmp_path, capsys):
    db = str(tmp_path / "real.db")
    assert main(["sweep", "test-tiny-resnet", "--mode", "both", "--batch", "1,8",
                 "--budget", "0.3", "--warmup", "0.3", "--threads", "1", "--processes", "1", "--max-processes", "1",
                 "--db", db,
                 "--run", "real"]) == 0
    assert main(["report", "real", "--db", db, "-o", str(tmp_path / "report")]) == 0
    html = Path(capsys.readouterr().out.strip().splitlines()[-1])
    listed = {p["id"] for p in json.loads((html.parent / "report.json").read_text())["plots"]}
    # A loaded machine may leave a point unstable, never without a throughput plot.
    assert "throughput-test-tiny-resnet-0" in listed
    facts = open_and_check(browser, html, listed)
    tables = {t["id"] for t in facts["tables"]}
    assert {"table-best", "table-netstats", "table-environment", "table-points"} <= tables
    assert facts["title"] == "Run real"


def test_report_with_every_plot(browser, tmp_path, run_points):
    others = [m for m in S.framework_sweep() if m.workload.framework != "torch"]
    report = build_report(run_points + others, S.ENVIRONMENT,
                          predictions=S.predictions(), netstats_rows=S.NETSTATS_ROWS,
                          title="Run <script>alert(1)</script>")
    paths = write_report(report, tmp_path / "full")
    facts = open_and_check(browser, paths["html"], {p.id for p in report.plots})
    assert facts["title"] == "Run <script>alert(1)</script>"  # shown as text, never run
    assert len(facts["plots"]) == 10  # 3 networks' throughput, frameworks, and one of each other


def test_screenshot(browser, tmp_path):
    """With NNSCALE_REPORT_SCREENSHOT set, save the top of an example report as a PNG."""
    target = os.environ.get("NNSCALE_REPORT_SCREENSHOT")
    if not target:
        pytest.skip("set NNSCALE_REPORT_SCREENSHOT=PATH.png to save a screenshot")
    report = build_report(S.sweep(models=("resnet50",), world_sizes=(1, 2, 4)), S.ENVIRONMENT,
                          predictions=S.predictions(), netstats_rows=S.NETSTATS_ROWS,
                          title="Example report · ResNet-50 (synthetic data)")
    paths = write_report(report, tmp_path / "example")
    # Exactly the header, the highlights, the batch and the worker scaling: the README's picture.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1280, "height": 1372, "deviceScaleFactor": 1, "mobile": False})
    browser.get(paths["html"].resolve().as_uri())
    assert browser.save_screenshot(str(target))
