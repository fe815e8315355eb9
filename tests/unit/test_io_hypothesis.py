"""Property tests: random records never crash a reader; filters never split a group; the
defaults keep T0's short-answer tasks."""

from __future__ import annotations

import csv
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftflow.curate.filters import EmptyFilter, RepetitionFilter
from sftflow.curate.prompt_checks import EchoFilter, RestatedFilter
from sftflow.curate.truncation import TruncationFilter
from sftflow.io import read_examples
from sftflow.schema import Example

KEYS = st.sampled_from(["prompt", "completion", "instruction", "input", "output", "messages", "conversations",
                        "metadata", "id", "role", "content", "from", "value", "task", "system", "tools"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS | st.text(max_size=8), inner,
                                                                       max_size=4)), max_leaves=20)
RECORD = st.dictionaries(KEYS, VALUES, max_size=6)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def count(path) -> tuple[int, int]:
    res = read_examples(path, skip_invalid=True)
    return len(res.examples), len(res.rejected)


@SETTINGS
@given(st.lists(st.one_of(RECORD, VALUES), min_size=1, max_size=12))
def test_random_jsonl_records_are_read_or_rejected_never_raised(tmp_path, rows):
    p = tmp_path / "r.jsonl"
    # surrogatepass: lone surrogates in random text reach the file as the bytes a broken writer leaves
    p.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
                           for r in rows))
    kept, rejected = count(p)
    assert kept + rejected == len(rows)


CELLS = st.text(max_size=40) | st.sampled_from(['[1,2]', '{"a": 1}', '[{"role": "user"}]', "", "  ", "nan"])


@SETTINGS
@given(st.lists(st.sampled_from(["prompt", "completion", "instruction", "output", "messages", "metadata",
                                 "task", "id"]), min_size=1, max_size=5, unique=True),
       st.lists(st.lists(CELLS, min_size=0, max_size=7), min_size=1, max_size=10))
def test_random_csv_rows_are_read_or_rejected_never_raised(tmp_path, header, rows):
    p = tmp_path / "r.csv"
    with open(p, "w", newline="", encoding="utf-8", errors="surrogatepass") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    non_blank = sum(1 for r in rows if r)   # csv writes an empty row as a blank line: no record
    if non_blank == 0:
        return
    kept, rejected = count(p)
    assert kept + rejected == non_blank


GROUP_MEMBER = st.tuples(st.sampled_from(["g1", "g2", "g3", None]),
                         st.sampled_from(["", "...", "The answer is forty-two, as the guide says.",
                                          "the the the the the the the the the the the the",
                                          "It stopped in the middle of the"]))


@SETTINGS
@given(st.lists(GROUP_MEMBER, min_size=1, max_size=15))
def test_filters_never_split_a_group(members):
    exs = [Example.single(f"Question number {i}: what does the guide say?", text,
                          metadata={"group": g} if g else {}) for i, (g, text) in enumerate(members)]
    for f in (EmptyFilter(), RepetitionFilter(), TruncationFilter()):
        res = f.run(exs)
        assert len(res.kept) + len(res.rejected) == len(exs)
        kept_groups = {e.metadata.get("group") for e in res.kept} - {None}
        rejected_groups = {r.record["metadata"].get("group") for r in res.rejected} - {None}
        assert not kept_groups & rejected_groups
        exs = res.kept


def _t0_short_answers(shared_data):
    out = []
    for name in ("ag_news_classify", "wiki_qa_exercise", "yelp_review_full_format_star",
                 "yelp_review_full_on_a_scale", "wiki_qa_Jeopardy_style"):
        out += read_examples(shared_data / "t0-sample" / f"{name}.jsonl").examples
    return out


def test_defaults_keep_t0_short_answer_tasks(shared_data):
    exs = _t0_short_answers(shared_data)

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.sampled_from(range(len(exs))), min_size=1, max_size=40, unique=True))
    def check(idx):
        sample = [Example.from_dict(exs[i].to_dict()) for i in idx]
        for f in (EmptyFilter(), RepetitionFilter(), TruncationFilter(), EchoFilter(), RestatedFilter()):
            res = f.run(sample)
            assert not res.rejected, res.rejected[0].reason
    check()
