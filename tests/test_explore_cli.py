"""`studentflow explore` as the README shows it: it starts on the bundled sample, serves the
page on 127.0.0.1, and bad options end with one line, not a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

from studentflow.cli import main


def test_explore_serves_the_page_on_localhost():
    proc = subprocess.Popen([sys.executable, "-m", "studentflow.cli", "explore", "--port", "0", "--draws", "3"],
                            stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.perf_counter()
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("ready in"):
                break
        else:
            raise AssertionError("explore ended before serving:\n" + "".join(lines))
        url = re.search(r"http://(127\.0\.0\.1):(\d+)/", line)
        assert url, line
        assert time.perf_counter() - t0 < 120
        page = urllib.request.urlopen(url.group(0), timeout=30).read().decode()
        assert "studentflow explore" in page
        layout = urllib.request.urlopen(url.group(0) + "_dash-layout", timeout=30).read().decode()
        assert "sub-NCR-input" in layout and "Traceback" not in "".join(lines)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_explore_bad_options_are_one_line(capsys):
    assert main(["explore", "--draws", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("studentflow: error: --draws") and err.count("\n") == 1
    assert main(["explore", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
