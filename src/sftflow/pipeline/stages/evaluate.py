"""Recipe stage ``eval``: the trained model vs the recipe's base model on the test set.

The test set is read here and nowhere else. Before any model loads, the stage checks
that it shares no record and no group with what the run trained or selected on (the
data as read, every stage's output, the validation set) and refuses otherwise.
"""

from __future__ import annotations

from ..recipe import RunState
from ...evaluate.config import EvalConfig
from ...evaluate.run import EvalFailed, evaluate


def run_stage(cfg: EvalConfig, state: RunState) -> None:
    model = cfg.model or (str(state.model_dir) if state.model_dir else None)
    if model is None:
        raise ValueError("eval stage: no trained model (add a train section or set eval.model)")
    base = cfg.base or state.recipe.model
    data = list(cfg.data) or ([str(state.test_path)] if state.test_path else [])
    if data:
        state.check_test_unseen(data)
    out = state.stage_dir("eval")
    metrics = evaluate(cfg, model=model, base=base, data=data, out_dir=out)
    state.artifacts["eval"] = {"dir": str(out), "metrics": str(out / "metrics.json"),
                               "status": metrics["status"], "reasons": metrics["reasons"]}
    if metrics["status"] == "fail":
        err = EvalFailed(metrics["reasons"], out / "metrics.json")
        if state.recipe.report is not None:
            # Let the report stage write the page first; it raises this afterwards, so
            # the run still ends with a non-zero exit and the reasons.
            state.artifacts["eval_failure"] = err
        else:
            raise err
