"""Headless Chromium for tests that open a rendered page: one offline browser per test module, and `rendered`.

`scripts/test.sh` installs Debian's `chromium` and `chromium-driver` when they are missing, so a missing browser
fails the test rather than skipping it. The driver and the browser are given by path, so Selenium Manager (which
would download them) never runs; SE_OFFLINE=true keeps it offline should it run anyway.

Use it from a test module: `from tests.browser import chromium  # noqa: F401` (the fixture) and `rendered`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = ["CHROMEDRIVER", "CHROMIUM", "MARKS", "chromium", "rendered"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--window-size=1280,1600",
)
# The classes of the report's chart marks (abm/report_charts.py), which `rendered` counts per section.
MARKS = ("bar", "cell", "avg-cell", "node", "link")

_SCRIPT = """
const marks = arguments[0];
const sized = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
const result = {title: document.title, marks: {}, hidden: {}, notes: [],
                resources: performance.getEntriesByType('resource').length};
for (const section of document.querySelectorAll('section[id]')) {
  for (const cls of marks) {
    const all = Array.from(section.getElementsByClassName(cls));
    const shown = all.filter(sized).length;
    if (shown) (result.marks[section.id] ??= {})[cls] = shown;
    if (all.length > shown) (result.hidden[section.id] ??= {})[cls] = all.length - shown;
  }
  if (Array.from(section.querySelectorAll('.nodata')).some(sized)) result.notes.push(section.id);
}
return result;
"""


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """A headless Chromium (Selenium WebDriver) with a fresh profile, shared by the tests of one module."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: run scripts/test.sh, which installs chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def rendered(driver: WebDriver, path: Path) -> dict[str, Any]:
    """Open `path` (a file:// URI) and report what rendered, as plain JSON-able data:

    - "title": the document title (str);
    - "marks": {section id: {mark class: how many have a non-zero bounding box}} for the classes in MARKS; classes
      with none and sections with none are left out, e.g. {"kpis": {"bar": 14}, "cohort": {"cell": 6, "avg-cell": 3}};
    - "hidden": the same for marks that exist but have a zero-size box (normally {});
    - "notes": ids of the sections that show a "no data" note (a visible `.nodata`), in page order;
    - "resources": how many resources the page loaded (performance entries; 0 when nothing came from the network);
    - "severe": the messages of the browser console's SEVERE entries since the last call ([] if the log is
      unavailable).
    """
    driver.get(path.resolve().as_uri())
    result: dict[str, Any] = driver.execute_script(_SCRIPT, list(MARKS))
    result["severe"] = _severe(driver)
    return result


def _severe(driver: WebDriver) -> list[str]:
    try:
        entries = driver.get_log("browser")
    except WebDriverException:  # a driver without the logging extension: nothing to report
        return []
    return [str(entry.get("message")) for entry in entries if entry.get("level") == "SEVERE"]
