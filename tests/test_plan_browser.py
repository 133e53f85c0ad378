"""optimize.html and report.html in a real headless browser: the plan's map layer is drawn
(ESC schools sized by added slots, hover with the school's plan row), and no table is
wider than the page (wide ones scroll inside it). Needs selenium and a Chromium with its
chromedriver (``.ci/run`` installs them); skipped otherwise."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from test_report import setup  # noqa: F401  (the module-scoped report fixture)

from studentflow.report import write_report

webdriver = pytest.importorskip("selenium.webdriver")

from browser import CHROMIUM, DRIVER, start_chromium  # noqa: E402
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver")

#: Narrower than the report's widest tables, so they must scroll inside the page.
WIDTH = 820

_TABLES_FIT = """
const page = document.documentElement.clientWidth;
const bad = [];
document.querySelectorAll('table').forEach((t, k) => {
  const box = (t.closest('.table-wrap') || t).getBoundingClientRect();
  if (box.right > page + 1 || box.left < -1) bad.push([k, box.left, box.right, page]);
});
return {bad: bad, tables: document.querySelectorAll('table').length,
        page: page, scroll: document.documentElement.scrollWidth};
"""


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium(WIDTH, 900)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def optimized(small_region, tmp_path_factory):
    from studentflow.optimize_run import run_optimize

    out = tmp_path_factory.mktemp("opt") / "out"
    run_optimize(small_region / "manifest.toml", budget=3_000_000, draws=3, out_dir=out)
    return out


def _tables_fit(driver):
    res = driver.execute_script(_TABLES_FIT)
    assert res["tables"] > 0
    assert not res["bad"], res
    assert res["scroll"] <= res["page"] + 1, res  # the page itself never scrolls sideways


def test_optimize_page_has_the_plan_layer_and_tables_fit(optimized, browser):
    by_school = pd.read_csv(optimized / "plan_by_school.csv", dtype={"school_id": str})
    slots = by_school[(by_school["target_kind"] == "ESC school") & (by_school["slots_added"] > 0)]
    assert len(slots)
    browser.get((optimized / "optimize.html").as_uri())
    js = ("var g=document.getElementById('studentflow-plan-map');"
          "return g && g.data ? g.data.filter(d => d.name === 'plan: ESC slots added')"
          ".map(d => [d.lon.length, d.marker.size, d.hovertext]) : null")
    deadline = time.time() + 30
    layer = None
    while time.time() < deadline and not layer:
        layer = browser.execute_script(js)
        time.sleep(0.3)
    assert layer and len(layer) == 1, "no plan layer on the map"
    n, sizes, hover = layer[0]
    assert n == len(slots)
    drawn = browser.execute_script("return document.querySelectorAll('#studentflow-plan-map .scattergeo .point').length")
    assert drawn >= n
    # sized by the slots added: the school with most slots has the largest marker
    assert sizes.index(max(sizes)) == int(slots["slots_added"].to_numpy().argmax())
    first = slots.iloc[0]
    assert str(first["school_id"]) in hover[0] and f"slots added {int(first['slots_added']):,}" in hover[0]
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    _tables_fit(browser)


def test_report_tables_fit_the_page(setup, browser, tmp_path):  # noqa: F811
    write_report(setup.result, tmp_path, bundle=setup.bundle, model=setup.model, pairs=setup.pairs)
    browser.get((tmp_path / "report.html").as_uri())
    time.sleep(0.5)
    _tables_fit(browser)
    # whole numbers show as whole numbers: no ".00" cell anywhere
    cells = browser.execute_script("return [...document.querySelectorAll('td')].map(td => td.textContent)")
    assert cells and not [c for c in cells if c.strip().endswith(".00")]
