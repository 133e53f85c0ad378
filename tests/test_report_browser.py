"""report.html in a real headless browser: the interactive map renders from disk (file://),
with no console errors and no network, the scenario menu works, and hostile school names
run nothing. Needs the optional extra ``studentflow[browser]`` (selenium) and a Chromium
with its chromedriver; skipped otherwise."""

from __future__ import annotations

import time

import pytest
from test_report import setup  # noqa: F401  (the module-scoped report fixture)

from studentflow.report import write_report

webdriver = pytest.importorskip("selenium.webdriver")

from browser import CHROMIUM, DRIVER, start_chromium  # noqa: E402
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver")

HOSTILE = ["<script>window.__pwned=1</script>", "<img src=x onerror='window.__pwned=1'>",
           "=HYPERLINK(\"http://x\")", "</script><script>window.__pwned=1</script>"]


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(1300, 1000)
    yield driver
    driver.quit()


def _points(driver) -> int:
    return driver.execute_script(
        "return document.querySelectorAll('#studentflow-map .scattergeo .point').length")


def test_map_renders_offline_with_no_console_errors(setup, browser, tmp_path):  # noqa: F811
    schools = setup.bundle.schools.copy()
    schools["name"] = [f"{HOSTILE[k % len(HOSTILE)]} {k}" for k in range(len(schools))]
    bundle = type(setup.bundle)(**{**vars(setup.bundle), "schools": schools})
    write_report(setup.result, tmp_path, bundle=bundle, model=setup.model)
    browser.get((tmp_path / "report.html").as_uri())
    deadline = time.time() + 30
    while time.time() < deadline and not _points(browser):
        time.sleep(0.3)
    shown = _points(browser)
    assert shown > 0, "the map drew no school"
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs
    assert browser.execute_script("return window.__pwned === undefined")
    # every public JHS and ESC school of the scenario shown is drawn
    pj, es = setup.result.public_jhs, setup.result.esc_schools
    menu = browser.execute_script("var g=document.getElementById('studentflow-map');"
                                  "return g.layout.updatemenus[0].buttons.map(b => b.label)")
    t = setup.result.table.set_index("scenario")
    first = t["relieved_mean"].idxmax()
    assert menu[0].startswith("today") and menu[1:] == [s.name for s in setup.result.scenarios]
    assert shown == (pj["scenario"] == first).sum() + (es["scenario"] == first).sum()
    # the menu's "today" entry shows the public JHS before any scenario, with the baseline's ESC schools
    browser.execute_script("var g=document.getElementById('studentflow-map');"
                           "Plotly.update(g, g.layout.updatemenus[0].buttons[0].args[0]);")
    time.sleep(0.5)
    base = setup.result.baseline
    assert _points(browser) == (pj["scenario"] == base).sum() + (es["scenario"] == base).sum()
    hover = browser.execute_script("var g=document.getElementById('studentflow-map');"
                                   "return g.data.filter(d => d.visible === true)[0].hovertext[0]")
    assert "&lt;" in hover or "=HYPERLINK" in hover  # names reach the hover text, escaped
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert browser.execute_script("return window.__pwned === undefined")
