import base64
import io
import re

from sftflow.report import ReportConfig, build_report
from sftflow.report.gather import gather, group_rejects

from _report_fixture import make_run

IMG = re.compile(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def test_report_has_every_section_and_nonblank_plots(tmp_path):
    from PIL import Image
    run = make_run(tmp_path)
    path = build_report(run)
    assert path == run / "report.html"
    html = path.read_text()
    plots = dict(IMG.findall(html))
    assert set(plots) == {"curation funnel", "rejects by reason", "length distributions", "task distribution",
                          "loss curves", "behaviour probes", "multiple-choice accuracy", "judge outcomes",
                          "per-example loss"}
    for alt, b64 in plots.items():
        im = Image.open(io.BytesIO(base64.b64decode(b64))).convert("L")
        lo, hi = im.getextrema()
        assert im.width > 100 and hi - lo > 50, f"plot '{alt}' looks blank"
    for heading in ("<h2>Data</h2>", "<h2>Training</h2>", "Evaluation <span class='warn'>warn</span>",
                    "<h2>Generations</h2>", "<h3>Forgetting</h3>", "<h3>Judge</h3>", "Rejects by reason"):
        assert heading in html
    assert "-3.0 pts" in html and "possible overfitting: gap" in html
    assert "<b>1</b> unparsed verdict(s)" in html
    assert "judge: <b>win</b>" in html


def test_report_is_self_contained_and_escapes_model_text(tmp_path):
    html = build_report(make_run(tmp_path)).read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;maybe&lt;/b&gt;" in html
    # nothing is fetched: no external URLs in src/href attributes
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html)
    assert html.count("<script>") == 1          # only the inline table filter


def test_gather_reads_the_run_log_not_checkpoint_copies(tmp_path):
    d = gather(make_run(tmp_path))
    assert d.train_log_path.parent.name == "train"
    assert sum(1 for r in d.train_log if "eval_loss" in r) == 2
    assert [(g["step"], g["reason"], g["count"]) for g in d.rejects_by_reason] == [
        ("length", "response too short: # words", 10), ("exact_dedup", "duplicate of abc", 10)]


def test_report_shows_the_smoke_verdict(tmp_path):
    import json
    run = make_run(tmp_path)
    (run / "train" / "smoke.json").write_text(json.dumps({"passed": False, "checks": [
        {"name": "loss_finite", "ok": False, "detail": "loss became non-finite: step 2"},
        {"name": "supervised_tokens", "ok": True, "detail": "120 supervised tokens"}]}))
    html = build_report(run).read_text()
    assert "Smoke check <span class='fail'>fail</span>" in html
    assert "loss became non-finite: step 2" in html


def test_report_on_an_empty_folder_says_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    html = build_report(tmp_path / "empty", ReportConfig(title="nothing here")).read_text()
    assert "<title>nothing here</title>" in html
    for what in ("curation", "training data", "training log", "evaluation"):
        assert what in html


def test_group_rejects_keeps_examples_per_reason():
    rows = [{"step": "s", "reason": f"too long: {i}", "messages": [{"role": "user", "content": f"p{i}"}]}
            for i in range(5)]
    g = group_rejects(rows, examples_per_reason=2)
    assert len(g) == 1 and g[0]["count"] == 5 and [e["prompt"] for e in g[0]["examples"]] == ["p0", "p1"]
