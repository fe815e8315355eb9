"""Resume starts from the newest *complete* checkpoint of *this* run, or refuses and says why."""

from __future__ import annotations

import json
import shutil

import pytest

from sftflow.config import ConfigError
from sftflow.io import write_examples
from sftflow.schema import Example


def data_file(tmp_path, n=16, salt=""):
    p = tmp_path / f"d{salt}.jsonl"
    write_examples(p, [Example.single(f"Count {i}{salt}", f"Answer: {' '.join(['x'] * (i % 5 + 1))}")
                       for i in range(n)])
    return str(p)


def run(model, data, out, *, resume, steps=6, lr=1e-2):
    from sftflow.train.config import TrainConfig
    from sftflow.train.sft import train
    cfg = TrainConfig(model=model, data=[data], eval=[data], max_steps=steps, eval_steps=2, batch_size=4,
                      logging_steps=1, learning_rate=lr, seed=5, resume=resume, save_total_limit=10,
                      keep_best=False)
    return train(cfg, out_dir=out, quiet=True)


def loss_steps(out):
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r and "train_loss" not in r]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """One 6-step run with checkpoints at 2, 4 and 6, copied by each test before it damages it."""
    d = tmp_path_factory.mktemp("trained")
    data = data_file(d)
    run(tiny_model_dir, data, d / "out", resume=False)
    return tiny_model_dir, data, d / "out"


def copy_run(trained, tmp_path):
    model, data, out = trained
    shutil.copytree(out, tmp_path / "out")
    return model, data, tmp_path / "out"


def test_a_checkpoint_cut_short_is_skipped_with_a_notice(trained, tmp_path, capsys):
    model, data, out = copy_run(trained, tmp_path)
    ck = out / "checkpoints" / "checkpoint-6"
    opt = ck / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])      # killed while saving
    # the log as a run killed right after that save would have left it, with a torn last line
    log = out / "log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()
                           if json.loads(line).get("step", 0) <= 6 and "train_loss" not in line) + '{"step": 7, "lo')
    res = run(model, data, out, resume=True)
    err = capsys.readouterr()
    assert "checkpoint-6" in err.out + err.err and "incomplete" in err.out + err.err
    assert res.steps == 6 and loss_steps(out) == [1, 2, 3, 4, 5, 6]   # 5 and 6 trained again, once


def test_a_stray_folder_name_does_not_crash(trained, tmp_path):
    model, data, out = copy_run(trained, tmp_path)
    shutil.rmtree(out / "checkpoints" / "checkpoint-6")       # killed before the last save
    (out / "checkpoints" / "checkpoint-final").mkdir()
    (out / "checkpoints" / "checkpoint-4.old").mkdir()
    res = run(model, data, out, resume=True)
    assert res.steps == 6 and loss_steps(out) == list(range(1, 7))


def test_resume_with_other_data_is_refused_naming_it(trained, tmp_path):
    model, _, out = copy_run(trained, tmp_path)
    with pytest.raises(ConfigError, match="training data"):
        run(model, data_file(tmp_path, salt="b"), out, resume=True)


def test_resume_with_other_options_is_refused_naming_them(trained, tmp_path):
    model, data, out = copy_run(trained, tmp_path)
    with pytest.raises(ConfigError, match=r"learning_rate: 0\.01 in the checkpoint, 0\.02 now"):
        run(model, data, out, resume=True, lr=2e-2)


def test_a_fresh_run_into_a_folder_with_checkpoints_clears_them_and_says_so(trained, tmp_path, capsys):
    model, data, out = copy_run(trained, tmp_path)
    (out / "checkpoints" / "checkpoint-100").mkdir()          # a longer earlier run's last save
    run(model, data, out, resume=False, steps=2)
    err = capsys.readouterr()
    assert "removing" in err.out + err.err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]
