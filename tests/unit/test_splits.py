"""Three sets by group: no group crosses sets, seeded, and the test set is refused when it leaks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftflow.io import load_examples, write_examples
from sftflow.schema import Example
from sftflow.splits import LeakedTestSet, check_test_unseen, group_of, shared_groups, split_by_group


def records(groups: list[int]) -> list[Example]:
    """One record per entry; entry g < 0 means 'no group' (the record is its own group)."""
    out = []
    for i, g in enumerate(groups):
        meta = {} if g < 0 else {"group": f"g{g}"}
        out.append(Example.single(f"question {i}", f"answer {i}", metadata=meta))
    return out


@settings(max_examples=60, deadline=None)
@given(groups=st.lists(st.integers(min_value=-1, max_value=12), min_size=6, max_size=60),
       val=st.sampled_from([0.0, 0.1, 0.2]), test=st.sampled_from([0.1, 0.2, 0.3]), seed=st.integers(0, 5))
def test_no_group_crosses_sets_and_nothing_is_lost(groups, val, test, seed):
    exs = records(groups)
    n_groups = len({group_of(e) for e in exs})
    try:
        s = split_by_group(exs, validation=val, test=test, seed=seed)
    except ValueError as e:
        assert "no group would be left" in str(e)
        held = (max(1, round(n_groups * val)) if val else 0) + max(1, round(n_groups * test))
        assert held >= n_groups
        return
    sets = [s.train, s.validation, s.test]
    assert sum(map(len, sets)) == len(exs)
    assert sorted(e.id for part in sets for e in part) == sorted(e.id for e in exs)
    for a in range(3):
        for b in range(a + 1, 3):
            assert not shared_groups(sets[a], sets[b])
    assert s.train and s.test
    assert bool(s.validation) == (val > 0)
    again = split_by_group(list(reversed(exs)), validation=val, test=test, seed=seed)
    assert {e.id for e in again.test} == {e.id for e in s.test}   # file order does not matter


def test_grouped_records_travel_together():
    exs = records([0] * 10 + list(range(1, 21)))
    s = split_by_group(exs, validation=0.2, test=0.2, seed=1)
    where = [name for name, part in (("train", s.train), ("validation", s.validation), ("test", s.test))
             if any(group_of(e) == "g0" for e in part)]
    assert len(where) == 1
    assert s.summary()[where[0]]["records"] >= 10


def test_different_seeds_give_different_splits():
    exs = records(list(range(40)))
    a = split_by_group(exs, validation=0.1, test=0.2, seed=0)
    b = split_by_group(exs, validation=0.1, test=0.2, seed=1)
    assert {e.id for e in a.test} != {e.id for e in b.test}


def test_test_set_overlap_is_refused_by_id_and_by_group():
    exs = records([0, 0, 1, 2, 3])
    with pytest.raises(LeakedTestSet, match="1 test record.*also in train"):
        check_test_unseen([exs[2]], {"train": exs[2:4]})
    with pytest.raises(LeakedTestSet, match=r"1 test group.*also occur in select pool \(g0\)"):
        check_test_unseen([exs[0]], {"train": exs[2:], "select pool": [exs[1]]})
    check_test_unseen([exs[4]], {"train": exs[:4]})


def _recipe(tmp_path, **data):
    from sftflow.pipeline.recipe import Recipe
    return Recipe.model_validate({"data": data, "seed": 3})


def test_recipe_fixes_three_sets_and_lists_test_ids(tmp_path):
    from sftflow.pipeline.recipe import RunState, prepare_data
    pool = records([i // 3 for i in range(60)])       # 20 groups of 3 (paraphrase-like)
    write_examples(tmp_path / "pool.jsonl", pool)
    recipe = _recipe(tmp_path, train=[str(tmp_path / "pool.jsonl")], validation_fraction=0.1, test_fraction=0.2)
    state = RunState(recipe=recipe, out_dir=tmp_path / "run")
    prepare_data(state)
    train, val, test = (load_examples([p]) for p in (state.train_path, state.validation_path, state.test_path))
    assert (len(train), len(val), len(test)) == (42, 6, 12)
    assert not shared_groups(train, test) and not shared_groups(val, test) and not shared_groups(train, val)
    manifest = json.loads((tmp_path / "run" / "data" / "manifest.json").read_text())
    assert manifest["test_ids"] == [e.id for e in test]
    assert manifest["counts"]["test"] == {"records": 12, "groups": 4}
    assert state.eval_path == state.validation_path    # training evaluates on validation, never test


def test_recipe_refuses_a_test_file_that_overlaps_training(tmp_path):
    from sftflow.pipeline.recipe import RunState, prepare_data
    pool = records(list(range(20)))
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "test.jsonl", pool[:3])
    recipe = _recipe(tmp_path, train=[str(tmp_path / "pool.jsonl")], test=[str(tmp_path / "test.jsonl")])
    with pytest.raises(LeakedTestSet, match="3 test record"):
        prepare_data(RunState(recipe=recipe, out_dir=tmp_path / "run"))


def test_eval_stage_refuses_test_ids_the_run_selected_on(tmp_path):
    """A test file given to the eval stage later is checked against every file that trained or chose."""
    from sftflow.evaluate.config import EvalConfig
    from sftflow.pipeline.recipe import RunState, prepare_data
    from sftflow.pipeline.stages.evaluate import run_stage
    pool = records(list(range(20)))
    write_examples(tmp_path / "pool.jsonl", pool)
    recipe = _recipe(tmp_path, train=[str(tmp_path / "pool.jsonl")], test_fraction=0.2, validation_fraction=0.1)
    state = RunState(recipe=recipe, out_dir=tmp_path / "run", model_dir=tmp_path / "no-model")
    prepare_data(state)
    sel = state.stage_dir("select") / "selected.jsonl"
    train = load_examples([state.train_path])
    write_examples(sel, train[:5])
    state.train_path = sel
    write_examples(tmp_path / "late_test.jsonl", train[4:6])
    with pytest.raises(LeakedTestSet, match="also in"):
        run_stage(EvalConfig(data=[str(tmp_path / "late_test.jsonl")], choice=None), state)
