"""The HTML report renders in a real browser: headless Debian chromium, offline.

Install chromium with ``scripts/install_test_deps.sh``. The test copies the report
and appends a small harness script (not part of the report) that, once the page has
loaded, checks each plot decoded and is not blank by drawing it to a canvas, and
writes the verdict into the page title; ``--dump-dom`` returns the page after that.
Console messages (errors, uncaught exceptions, failed loads) come out on stderr with
``--enable-logging=stderr`` and must be absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _report_fixture import HOSTILE, make_hostile_run, make_run  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(run scripts/install_test_deps.sh)")

HARNESS = """
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img.plot').forEach(function (img) {
    var c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    var ok = img.complete && img.naturalWidth > 0, dark = 0, total = 0;
    if (ok) {
      var ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      var px = ctx.getImageData(0, 0, c.width, c.height).data;
      for (var i = 0; i < px.length; i += 16) {       // every 4th pixel
        total += 1;
        if (px[i] + px[i + 1] + px[i + 2] < 600) { dark += 1; }
      }
    }
    out.push({alt: img.alt, w: img.naturalWidth, h: img.naturalHeight, ink: total ? dark / total : 0});
  });
  var box = document.getElementById('filter'), shown = null;
  if (box && window.__filterQuery !== undefined) {      // type into the generations filter
    box.value = window.__filterQuery;
    box.dispatchEvent(new Event('input'));
    shown = document.getElementById('shown').textContent;
  }
  document.title = 'HARNESS' + JSON.stringify({plots: out, alerts: window.__alerts || 0, shown: shown}) + 'END';
});
</script>
"""


# Runs before anything in the page: counts alert() calls, sets the filter query to type.
HEAD = "<script>window.__alerts = 0; window.alert = function () { window.__alerts += 1; };{}</script>"


def render_full(html_path: Path, tmp_path: Path, query: str | None = None) -> tuple[dict, list[str], str]:
    page = tmp_path / "page.html"
    # "</" would end the harness's own script element, as it would any inline script
    literal = json.dumps(query).replace("</", "<\\/")
    head = HEAD.replace("{}", "" if query is None else f"window.__filterQuery = {literal};")
    html = html_path.read_text()
    html = html.replace("<head>", "<head>" + head, 1) if "<head>" in html else head + html
    page.write_text(html.replace("</body>", HARNESS + "</body>"))
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"HARNESS(.*?)END", p.stdout, re.S)
    assert m, "harness did not run: " + p.stdout[:500]
    result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line]
    return result, console, p.stdout


def render(html_path: Path, tmp_path: Path) -> tuple[list[dict], list[str], str]:
    result, console, dom = render_full(html_path, tmp_path)
    return result["plots"], console, dom


def test_report_renders_in_chromium_without_console_errors(tmp_path):
    from sftflow.report import build_report
    report = build_report(make_run(tmp_path))
    plots, console, dom = render(report, tmp_path)
    assert console == [], "console messages: " + "\n".join(console)
    assert len(plots) == 9
    for p in plots:
        assert p["w"] > 100 and p["h"] > 50, p
        assert p["ink"] > 0.005, f"plot {p['alt']!r} renders blank"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_harness_detects_console_errors_and_blank_plots(tmp_path):
    """The checks above can fail: a page with a script error and a blank image trips both."""
    import base64
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    bad = tmp_path / "bad.html"
    bad.write_text(f'<html><body><img class="plot" alt="blank" src="data:image/png;base64,{b64}">'
                   "<script>notDefined();</script></body></html>")
    plots, console, _ = render(bad, tmp_path)
    assert any("notDefined" in c for c in console)
    assert plots == [{"alt": "blank", "w": 300, "h": 200, "ink": 0}]


def test_hostile_text_runs_no_script_and_the_filter_still_works(tmp_path):
    """Markup in every field reaches the browser as text: no alert fires, and the filter finds it."""
    from sftflow.report import ReportConfig, build_report
    report = build_report(make_hostile_run(tmp_path), ReportConfig(title="t" + HOSTILE))
    result, console, _ = render_full(report, tmp_path, query="<script>alert(1)</script>")
    assert console == [], "console messages: " + "\n".join(console)
    assert result["alerts"] == 0
    assert result["shown"] == "1"          # the one generation row, matched on its visible text


def test_harness_counts_alerts(tmp_path):
    """The alert counter can fail: a page that calls alert() is counted."""
    bad = tmp_path / "alert.html"
    bad.write_text("<html><head></head><body><script>alert(1)</script></body></html>")
    result, _, _ = render_full(bad, tmp_path)
    assert result["alerts"] == 1
