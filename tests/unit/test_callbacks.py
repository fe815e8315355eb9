"""Early stopping, overfitting monitor, non-finite guard and the --smoke verdict, on a
real transformers Trainer with the tiny random model."""

import json
import math
from types import SimpleNamespace

import pytest
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState

from sftflow.train.callbacks import (EarlyStopping, EventLog, NonFiniteGuard, OverfitMonitor, callbacks_for,
                                     last_good_checkpoint)
from sftflow.train.smoke import check_smoke, infer_expected_prefix, read_log

from _train_helpers import PAIRS, make_trainer


class ScriptedEvalTrainer(Trainer):
    """A real Trainer whose evaluation returns a scripted loss sequence."""

    def __init__(self, *a, eval_losses, **k):
        super().__init__(*a, **k)
        self.eval_losses = list(eval_losses)

    def evaluate(self, *a, **k):
        metrics = {"eval_loss": self.eval_losses.pop(0)}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


@pytest.mark.parametrize("min_delta,stop_step,best_step", [
    # evals at steps 2,4,6,...: 1.0, 0.8, 0.79, 0.85, 0.9, ...
    (0.05, 8, 6),   # 0.79 improves by < 0.05: strike 1; 0.85 worse: strike 2 -> stop at step 8
    (0.0, 10, 6),   # 0.79 counts as better; 0.85 and 0.9 are two strikes -> stop at step 10
])
def test_early_stopping_stops_at_expected_step(tiny_model_dir, smol_tokenizer, tmp_path, min_delta,
                                               stop_step, best_step):
    log = EventLog(tmp_path / "log.jsonl")
    es = EarlyStopping(patience=2, min_delta=min_delta, log=log)
    t = make_trainer(tiny_model_dir, smol_tokenizer, tmp_path, [es], max_steps=40, eval_steps=2,
                     trainer_cls=ScriptedEvalTrainer,
                     eval_losses=[1.0, 0.8, 0.79, 0.85, 0.9, 0.95, 1.0, 1.1] + [1.2] * 20)
    t.train()
    assert t.state.global_step == stop_step
    assert es.stopped_at == stop_step
    # the best checkpoint (lowest eval loss) is what the run ends with
    assert t.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    events = [r for r in read_log(tmp_path / "log.jsonl") if r.get("event") == "early_stop"]
    assert len(events) == 1 and events[0]["step"] == stop_step


def _state(step):
    s = TrainerState()
    s.global_step = step
    return s


def test_overfit_monitor_on_scripted_sequence(tmp_path):
    mon = OverfitMonitor(gap=0.3, rising=2, log=EventLog(tmp_path / "log.jsonl"))
    args, ctl = SimpleNamespace(output_dir=str(tmp_path)), TrainerControl()
    script = [  # (step, train loss, eval loss)
        (10, 2.0, 2.1), (20, 1.5, 1.7), (30, 1.2, 1.6), (40, 1.0, 1.65), (50, 0.9, 1.7)]
    for step, tr, ev in script:
        mon.on_log(args, _state(step), ctl, logs={"loss": tr})
        mon.on_evaluate(args, _state(step), ctl, metrics={"eval_loss": ev})
    kinds = [(w["step"], w["event"]) for w in mon.warnings]
    # gap > 0.3 from step 30 (0.4, 0.65, 0.8); eval rose twice in a row at step 50 (1.6 -> 1.65 -> 1.7)
    assert kinds == [(30, "overfit_gap"), (40, "overfit_gap"), (50, "overfit_gap"), (50, "eval_rising")]
    assert not ctl.should_training_stop          # it warns; early stopping is what stops
    rows = read_log(tmp_path / "log.jsonl")
    assert [r["event"] for r in rows] == [k for _, k in kinds]


def test_non_finite_guard_stops_and_keeps_last_good_checkpoint(tiny_model_dir, smol_tokenizer, tmp_path):
    guard = NonFiniteGuard(EventLog(tmp_path / "log.jsonl"))
    # lr 1e20: step 1 pushes weights to ~1e20, whose squares overflow in RMSNorm, so step 2 is NaN
    t = make_trainer(tiny_model_dir, smol_tokenizer, tmp_path, [guard], lr=1e20, max_steps=20,
                     logging_steps=1, save_steps=1)
    t.train()
    assert guard.tripped is not None and guard.tripped["step"] == 2
    assert t.state.global_step == 2                             # stopped, not 20 steps
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-1"]                            # no checkpoint of NaN weights
    assert last_good_checkpoint(tmp_path / "checkpoints", guard.tripped["step"]).name == "checkpoint-1"
    assert "learning rate too high" in guard.tripped["message"]


def test_guard_trips_on_logged_nan():
    g = NonFiniteGuard(check_weights=False)
    ctl = TrainerControl()
    g.on_log(None, _state(7), ctl, logs={"loss": 1.0, "grad_norm": float("inf")})
    assert ctl.should_training_stop and g.tripped["what"] == "non-finite grad norm (inf)"


def test_callbacks_for_config():
    cfg = SimpleNamespace(overfit_gap=0.3, early_stopping_patience=None, early_stopping_min_delta=0.0)
    assert [type(c).__name__ for c in callbacks_for(cfg)] == ["NonFiniteGuard", "OverfitMonitor"]
    cfg.early_stopping_patience = 3
    cbs = callbacks_for(cfg)
    assert isinstance(cbs[-1], EarlyStopping) and cbs[-1].early_stopping_patience == 3


# --------------------------------------------------------------------------- smoke


def _sample(trainer, tokenizer):
    from sftflow.backends import GenParams
    from sftflow.backends.transformers_backend import TransformersBackend
    be = TransformersBackend(model="tiny", model_obj=trainer.model, tokenizer=tokenizer, batch_size=1)
    c = be.generate([[{"role": "user", "content": PAIRS[0][0]}]], GenParams(max_new_tokens=6))[0]
    return {"text": c.text, "finish_reason": c.finish_reason}


def _smoke(tiny_model_dir, tok, tmp_path, **kw):
    guard = NonFiniteGuard(EventLog(tmp_path / "log.jsonl"))
    t = make_trainer(tiny_model_dir, tok, tmp_path, [guard], logging_steps=10, **kw)
    t.add_callback(_LogRows(tmp_path / "log.jsonl"))
    t.train()
    sup = sum(sum(1 for x in r["labels"] if x != -100) for r in t.train_dataset.rows)
    expected = "^\\s*" + infer_expected_prefix([a for _, a in PAIRS])
    return check_smoke(read_log(tmp_path / "log.jsonl"), supervised_tokens=sup,
                       sample=_sample(t, tok), expected=expected)


class _LogRows(TrainerCallback):
    """The step log a trainer writes (sftflow's trainer writes the same rows)."""
    def __init__(self, path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")


def test_smoke_passes_on_a_sane_config(tiny_model_dir, smol_tokenizer, tmp_path):
    res = _smoke(tiny_model_dir, smol_tokenizer, tmp_path, lr=5e-3, max_steps=40)
    assert res.passed, res.summary()


def test_smoke_fails_when_all_labels_are_masked(tiny_model_dir, smol_tokenizer, tmp_path):
    res = _smoke(tiny_model_dir, smol_tokenizer, tmp_path, lr=3e-3, max_steps=20, mask_all=True)
    assert not res.passed
    assert any(r.startswith("supervised_tokens: no supervised tokens") for r in res.reasons)


def test_smoke_fails_when_lr_is_huge(tiny_model_dir, smol_tokenizer, tmp_path):
    res = _smoke(tiny_model_dir, smol_tokenizer, tmp_path, lr=1e20, max_steps=20)
    assert not res.passed
    names = {c.name for c in res.checks if not c.ok}
    assert {"loss_finite", "loss_falling"} <= names
    assert any("non-finite" in r for r in res.reasons)


def test_smoke_verdict_on_hand_made_logs():
    ok_log = [{"step": s, "loss": 3.0 - s / 100} for s in range(0, 100, 10)]
    assert check_smoke(ok_log, supervised_tokens=50, sample="Answer: 4", expected="^Answer:").passed
    flat = [{"step": s, "loss": 2.0} for s in range(0, 100, 10)]
    r = check_smoke(flat, supervised_tokens=50, sample="Answer: 4")
    assert r.reasons and r.reasons[0].startswith("loss_falling")
    r = check_smoke(ok_log, supervised_tokens=50, sample="Sure! 4", expected="^Answer:")
    assert [c.name for c in r.checks if not c.ok] == ["sample_format"]
    r = check_smoke([], supervised_tokens=50, sample=None,
                    error=RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert r.reasons[0].startswith("no_crash: out of memory")
    nan_log = ok_log + [{"step": 100, "loss": math.nan}]
    assert "loss_finite" in {c.name for c in check_smoke(nan_log, supervised_tokens=5, sample="x").checks
                             if not c.ok}


def test_probe_metric_picks_best_checkpoint_by_behaviour(tiny_model_dir, smol_tokenizer, tmp_path):
    """A scripted probe rate (peaking at the 2nd evaluation) makes checkpoint-4 the best,
    although the eval loss keeps falling."""
    from sftflow.train.callbacks import ProbeMetric
    script = iter([[1, 0, 0, 0, 0], [1] * 4 + [0] * 1, [1, 1, 0, 0, 0], [1, 1, 0, 0, 0]])

    def gen(model, prompts):
        flags = next(script)
        return [{"text": "Answer: x" if f else "no", "finish_reason": "stop"} for f in flags]
    pm = ProbeMetric([[{"role": "user", "content": "q"}]] * 5, smol_tokenizer,
                     {"name": "fmt", "kind": "prefix", "prefix": "Answer:"}, generate=gen)
    t = make_trainer(tiny_model_dir, smol_tokenizer, tmp_path, [pm], max_steps=8, eval_steps=2,
                     trainer_cls=ScriptedEvalTrainer, eval_losses=[1.0, 0.9, 0.8, 0.7])
    t.args.metric_for_best_model = "eval_probe_fmt"
    t.args.greater_is_better = True
    t.train()
    assert [r for _, r in pm.history] == [0.2, 0.8, 0.4, 0.4]
    assert t.state.best_model_checkpoint.endswith("checkpoint-4")


def test_check_report_to(monkeypatch):
    import sftflow.train.callbacks as cb
    monkeypatch.setattr(cb, "installed_trackers", lambda: ["tensorboard"])
    assert cb.check_report_to([]) == [] and cb.check_report_to(["none"]) == []
    assert cb.check_report_to(["auto"]) == ["tensorboard"]
    assert cb.check_report_to(["TensorBoard"]) == ["tensorboard"]
    with pytest.raises(ValueError, match="wandb not installed .*installed here: tensorboard"):
        cb.check_report_to(["wandb"])
    with pytest.raises(ValueError, match="unknown tracker"):
        cb.check_report_to(["comet"])


def test_probe_evaluation_leaves_random_state_and_tokenizer_alone(tiny_model_dir, smol_tokenizer):
    """A probe generates (seeding torch, padding left); training must not notice."""
    import copy
    import random

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from sftflow.train.callbacks import ProbeMetric
    tok = copy.deepcopy(smol_tokenizer)
    tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.train()
    pm = ProbeMetric([[{"role": "user", "content": q}] for q, _ in PAIRS[:2]], tok,
                     {"name": "fmt", "kind": "prefix", "prefix": "Answer:"}, max_new_tokens=3)
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    torch.rand(5), random.random(), np.random.rand()      # somewhere inside a run, not at a seed
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()
    metrics = {}
    pm.on_evaluate(None, _state(2), TrainerControl(), metrics=metrics, model=model)
    assert "eval_probe_fmt" in metrics and model.training
    after = torch.get_rng_state(), random.getstate(), np.random.get_state()
    assert torch.equal(before[0], after[0])
    assert before[1] == after[1]
    assert all(np.array_equal(a, b) for a, b in zip(before[2], after[2]))
    assert tok.padding_side == "right"                   # the training tokenizer, saved with the model
