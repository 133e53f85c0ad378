"""Benchmark: `studentflow explore`, from a lever change to the point answer and to the interval.

    python scripts/bench_explore.py [--draws 20] [--data MANIFEST] [--no-browser]

Prints, on the bundled sample by default:
1. start-up: the time `studentflow explore` takes to fit, calibrate and serve (a subprocess,
   until its "ready" line), target < 15 s;
2. in process, per lever setting: the point estimate (draws=0) and the N-draw interval of
   :meth:`ExploreSession.answer`, against the baseline of a plain ``run_scenarios`` call that
   calibrates anew each time (what a re-run would do), targets 0.5 s and 2 s;
3. through the page in headless Chromium (if selenium, chromium and chromedriver are
   there): from pressing Enter in the NCR box to the point figure and to the interval.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings

SETTINGS = [{"subsidy": {"NCR": "5000"}}, {"subsidy": {"all": "2000"}},
            {"subsidy": {"HUC": "3000"}, "capacity": "contracted"}, {"subsidy": {"other": "10000"}}]


def startup(data) -> float:
    cmd = [sys.executable, "-m", "studentflow.cli", "explore", "--port", "0"] + (["--data", data] if data else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("ready in"):
                return time.perf_counter() - t0
        raise SystemExit(f"explore ended without serving: exit {proc.wait()}")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--data", default=None)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"start-up (studentflow explore until it serves): {startup(args.data):.1f} s   target < 15 s")

    from studentflow.explore import make_server, start_session
    from studentflow.explore.levers import levers_scenario, status_quo
    from studentflow.scenarios import run_scenarios

    session = start_session(args.data, draws=args.draws)
    print(f"\n{'lever setting':<44} {'point':>7} {'interval':>9}   baseline (run_scenarios, calibrating anew): "
          f"point / interval")
    for raw in SETTINGS:
        lv = session.levers(raw)
        point = session.answer(lv, draws=0).seconds
        interval = session.answer(lv).seconds
        t0 = time.perf_counter()
        run_scenarios(session.bundle, session.model, [status_quo(lv), levers_scenario(lv)], pairs=session.pairs,
                      draws=0, seed=session.seed, progress=False, keep_draws=False)
        b_point = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_scenarios(session.bundle, session.model, [status_quo(lv), levers_scenario(lv)], pairs=session.pairs,
                      draws=args.draws, seed=session.seed, progress=False, keep_draws=False)
        b_int = time.perf_counter() - t0
        print(f"{str(raw):<44} {point:6.2f}s {interval:8.2f}s   {b_point:.2f} s / {b_int:.2f} s "
              f"(ratio {point / b_point:.2f} / {interval / b_int:.2f})")
    print("targets: point ≤ 0.5 s, interval ≤ 2 s")

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if args.no_browser or not (chromium and driver_path):
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.keys import Keys

    server = make_server(session, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    drv = webdriver.Chrome(service=Service(driver_path), options=opts)
    text = lambda i: drv.execute_script(f"return document.getElementById('{i}').innerText")  # noqa: E731
    try:
        drv.get(f"http://127.0.0.1:{server.port}/")
        while not text("interval-status").startswith("intervals"):
            time.sleep(0.02)
        print("\nthrough the page (Enter in the NCR box → figure shown; the map follows the interval):")
        for value in ("5000", "2000", "8000"):
            time.sleep(4)  # let the previous change's map finish, as between questions in a meeting
            before, before_iv = text("fig-placed-value"), text("fig-placed-interval")
            box = drv.find_element("id", "sub-NCR-input")
            box.send_keys(Keys.CONTROL, "a")
            t0 = time.perf_counter()
            box.send_keys(value + "\n")
            while text("fig-placed-value") == before:
                time.sleep(0.01)
            t_point = time.perf_counter() - t0
            while text("fig-placed-interval") == before_iv:
                time.sleep(0.01)
            print(f"  NCR +₱{int(value):,}: point {t_point:.2f} s, interval {time.perf_counter() - t0:.2f} s")
    finally:
        drv.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
