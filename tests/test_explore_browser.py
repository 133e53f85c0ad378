"""studentflow explore in a real headless browser: move the NCR subsidy to +₱5,000, wait for
the figures and check them against ``run_scenarios`` for the same scenario, seed and draws;
type an invalid value and read the message; save the scenario TOML and run it again.
Needs selenium, Chromium and chromedriver (``.ci/run`` installs them); skipped otherwise."""

from __future__ import annotations

import threading
import time

import pytest

from studentflow.explore import make_server, start_session
from studentflow.explore.page import learners, pesos
from studentflow.scenarios import Scenario, load_scenarios, run_scenarios

webdriver = pytest.importorskip("selenium.webdriver")
from browser import CHROMIUM, DRIVER, start_chromium  # noqa: E402
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver")
DRAWS, SEED = 5, 4


@pytest.fixture(scope="module")
def served():
    session = start_session(draws=DRAWS, seed=SEED)
    server = make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield session, f"http://127.0.0.1:{server.port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    driver = start_chromium(1400, 1000, downloads=downloads,
                            extra=("--disable-background-networking", "--disable-component-update", "--no-first-run"))
    yield driver
    driver.quit()


def _text(driver, element_id) -> str:
    return driver.execute_script(f"var e=document.getElementById('{element_id}'); return e ? e.innerText : ''")


def _wait(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _page_figures(driver) -> dict:
    return {k: (_text(driver, f"fig-{k}-value"), _text(driver, f"fig-{k}-interval"))
            for k in ("placed", "relieved_congested", "cost", "pesos_per_relieved")}


def _expected(table, name) -> dict:
    row = table.set_index("scenario").loc[name]
    out = {}
    for k in ("placed", "relieved_congested", "cost", "pesos_per_relieved"):
        fmt = pesos if k in ("cost", "pesos_per_relieved") else learners
        lo, hi, mean = (float(row[f"{k}_{p}"]) for p in ("lo", "hi", "mean"))
        lo, hi, mean = (v if v == v else None for v in (lo, hi, mean))  # NaN shows as "–"
        out[k] = f"{fmt(lo)} – {fmt(hi)} (mean {fmt(mean)})"
    return out


def _set(driver, element_id, text):
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element("id", element_id)
    box.send_keys(Keys.CONTROL, "a")  # replace the text in one go (an emptied box would mean ₱0)
    box.send_keys(text + "\n")


def test_ncr_subsidy_through_the_page(served, browser):
    session, url = served
    browser.get(url)
    _wait(lambda: _text(browser, "interval-status").startswith("intervals"), "the first answer")
    sq = Scenario("status quo", baseline=True, capacity="billed")
    ncr = Scenario("explored", subsidy_by_tier={"NCR": 5000.0}, capacity="billed")
    ref = run_scenarios(session.bundle, session.model, [sq, ncr], pairs=session.pairs, draws=DRAWS, seed=SEED,
                        progress=False).table
    want = _expected(ref, "explored")
    _set(browser, "sub-NCR-input", "5000")
    try:
        _wait(lambda: {k: v[1] for k, v in _page_figures(browser).items()} == want, "the +₱5,000 figures")
    except AssertionError:
        raise AssertionError(f"page shows {_page_figures(browser)}, run_scenarios gives {want}") from None
    # the point estimate is run_scenarios at draws=0
    point = run_scenarios(session.bundle, session.model, [sq, ncr], pairs=session.pairs, draws=0, seed=SEED,
                          progress=False).table.set_index("scenario").loc["explored"]
    assert _text(browser, "fig-placed-value") == learners(point["placed_mean"])
    assert _text(browser, "fig-cost-value") == pesos(point["cost_mean"])
    assert "ESC schools: explored" in browser.execute_script(
        "return document.getElementById('map').querySelector('.js-plotly-plot').data.map(d => d.name).join('|')")
    rows = browser.find_elements("css selector", "#jhs-table tbody tr")
    assert 0 < len(rows) <= 15

    # an invalid value: a clear message on the page, the figures stay those of +₱5,000
    _set(browser, "sub-NCR-input", "abc")
    _wait(lambda: "not a number" in _text(browser, "lever-message"), "the message for 'abc'")
    assert "subsidy change for NCR schools: 'abc' is not a number" in _text(browser, "lever-message")
    _set(browser, "sub-NCR-input", "-999999")
    _wait(lambda: "out of range" in _text(browser, "lever-message"), "the message for -999,999")
    assert {k: v[1] for k, v in _page_figures(browser).items()} == want
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    # save the scenario TOML (the last valid levers) and run it again: the same figures
    browser.find_element("id", "save-toml").click()
    saved = browser.downloads / "explored.toml"
    _wait(saved.exists, "the downloaded scenario file", timeout=30)
    again = run_scenarios(session.bundle, session.model, load_scenarios(saved), pairs=session.pairs, draws=DRAWS,
                          seed=SEED, progress=False).table
    assert _expected(again, "explored") == want


def test_load_a_plan_file(served, browser, tmp_path):
    """A plan.toml (slots and subsidy at named schools) loads into the page, and its figures are
    run_scenarios' for that file; a file naming an unknown school gets a message."""
    session, url = served
    browser.get(url)
    _wait(lambda: _text(browser, "interval-status").startswith("intervals"), "the first answer")
    ids = list(session.schools.index[:3])
    plan = tmp_path / "plan.toml"
    plan.write_text('[[scenario]]\nname = "status quo"\nbaseline = true\ncapacity = "billed"\n\n'
                    '[[scenario]]\nname = "plan"\ncapacity = "billed"\n'
                    f'add_slots_at = {{ "{ids[0]}" = 40, "{ids[1]}" = 15 }}\n'
                    f'subsidy_at = {{ "{ids[2]}" = 3000 }}\n', encoding="utf-8")
    before = _text(browser, "fig-placed-interval")
    browser.find_element("css selector", "#upload input[type=file]").send_keys(str(plan))
    _wait(lambda: "loaded plan.toml" in _text(browser, "upload-message"), "the plan to load")
    _wait(lambda: _text(browser, "fig-placed-interval") not in ("", before), "the plan's figures")
    ref = run_scenarios(session.bundle, session.model, load_scenarios(plan), pairs=session.pairs, draws=DRAWS,
                        seed=SEED, progress=False).table
    want = _expected(ref, "plan")
    _wait(lambda: {k: v[1] for k, v in _page_figures(browser).items()} == want, "the plan's intervals")
    assert "subsidy changed at 1 named schools" in _text(browser, "slot-list")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\nadd_slots_at = { "999999" = 5 }\n', encoding="utf-8")
    browser.find_element("css selector", "#upload input[type=file]").send_keys(str(bad))
    _wait(lambda: "999999" in _text(browser, "upload-message"), "the message for an unknown school")
    assert "is not the ID of an ESC school" in _text(browser, "upload-message")


def test_hostile_names_are_shown_as_text(served, browser):
    session, url = served
    browser.get(url)
    _wait(lambda: _text(browser, "interval-status").startswith("intervals"), "the first answer")
    assert browser.execute_script("return window.__pwned === undefined")
