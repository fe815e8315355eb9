"""Build the planted pool: the demo training data with 30% bad examples of the kinds a real
annotation batch has, to test whether a selection rule keeps them out.

Deterministic (seeded, standard library only, byte-identical output). Of the 680 demo
records, 204 (30%) are corrupted in place, in four kinds of about equal size; the last
assistant turn is the one corrupted (the one the model is trained to write last):

* ``wrong_figure``: the leading computed figure of the ``Answer:`` line (the first one the
  question does not state; a name such as "the rule of 72" is no figure) is scaled by 0.6-0.85 or 1.15-1.5 and written in the same style;
  the ``Details:`` arithmetic is left as it was, so the record contradicts itself, as a
  typo in a result does. Only records with such a figure can get this kind.
* ``apology``: an apologetic, hedging preamble before the answer.
* ``off_format``: the house format broken: labels dropped, details first, one paragraph.
* ``truncated``: cut mid-sentence at 35-65% of its words, no closing punctuation.

Each planted record carries ``metadata.planted = <kind>`` so an experiment can count how
many a selection let in; selectors never read it. ``planted_labels.jsonl`` is what a
labelling pass over a seeded 30% sample of the pool would return (``{"id", "label"}``, 1 =
good): the only supervision a quality model gets. Record ids are sftflow's content ids (a
hash of the messages), computed here with the same recipe so the labels match.

    python src/sftflow/data/demo/build_planted_pool.py [--out DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANTED_SHARE = 0.30
LABELLED_SHARE = 0.30
KINDS = ("wrong_figure", "apology", "off_format", "truncated")
APOLOGIES = (
    "I'm sorry, but I can't be certain about this, and you may want to check with an advisor. ",
    "I'm sorry, I'm not able to be fully sure here, but I'll try. ",
    "I apologize in advance, as I may not have this exactly right. ",
    "Sorry, I can't be certain of the details, so please double-check this. ",
)
# A figure as the demo writes it: optional $, digits with thousands commas, decimals, optional %.
FIGURE = re.compile(r"(?<![\w.,])(\$)?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%)?")
# Numbers that are part of a name, not a figure (as sftflow.evaluate.reference reads them).
NAMES = re.compile(r"\brule of \d+\b|\b\d+/\d+(?:/\d+)+\b|\b(?:401|403|457)\s?\([a-z]\)|\b529 plan\b", re.IGNORECASE)


def content_id(messages: list[dict]) -> str:
    """sftflow.schema.content_id for plain {role, content} conversations (no tools)."""
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def _value(m: re.Match) -> float:
    return float(m[2].replace(",", "") + (m[3] or ""))


def leading_computed_figure(messages: list[dict]) -> re.Match | None:
    """The first figure of the last answer's ``Answer:`` line that the conversation before it
    does not state (the figure the answer works out), as a match in that answer's text."""
    answer = messages[-1]["content"]
    line_end = answer.find("\n")
    given = {_value(m) for turn in messages[:-1] for m in FIGURE.finditer(turn["content"])}
    line = answer[:line_end] if line_end > 0 else answer
    names = [n.span() for n in NAMES.finditer(line)]
    for m in FIGURE.finditer(line):
        if any(a <= m.start() < b for a, b in names):       # "the rule of 72" names a rule, computes nothing
            continue
        if _value(m) not in given and _value(m) != 0:      # 0% scales to itself
            return m
    return None


def _write_like(m: re.Match, value: float) -> str:
    """``value`` in the style of the matched figure (currency, commas, decimals, percent)."""
    decimals = len(m[3]) - 1 if m[3] else 0
    body = f"{value:,.{decimals}f}" if "," in m[2] or value >= 10000 else f"{value:.{decimals}f}"
    return (m[1] or "") + body + (m[4] or "")


def wrong_figure(answer: str, m: re.Match, rng: random.Random) -> str:
    factor = rng.choice((rng.uniform(0.6, 0.85), rng.uniform(1.15, 1.5)))
    new = _write_like(m, _value(m) * factor)
    if new == m[0]:            # a small whole number can round back to itself: move it one unit
        new = _write_like(m, _value(m) + 1)
    return answer[:m.start()] + new + answer[m.end():]


def apology(answer: str, rng: random.Random) -> str:
    return rng.choice(APOLOGIES) + answer


def off_format(answer: str, rng: random.Random) -> str:
    head, _, details = answer.partition("\n\nDetails:")
    head = head.removeprefix("Answer:").strip()
    details = details.strip()
    if not details:
        return head.lower()
    return f"So basically: {details} {head}".replace("\n", " ")


def truncated(answer: str, rng: random.Random) -> str:
    words = answer.split(" ")
    cut = max(3, round(len(words) * rng.uniform(0.35, 0.65)))
    return " ".join(words[:cut]).rstrip(".,;:!?")


def build(records: list[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(planted pool, labels of a seeded sample): the same output for the same input and seed."""
    rng = random.Random(seed)
    n_planted = round(len(records) * PLANTED_SHARE)
    per_kind = [n_planted // len(KINDS) + (i < n_planted % len(KINDS)) for i in range(len(KINDS))]
    figure_of = [leading_computed_figure(r["messages"]) for r in records]
    eligible = [i for i, m in enumerate(figure_of) if m is not None]
    plan: dict[int, str] = {i: "wrong_figure" for i in rng.sample(eligible, per_kind[0])}
    rest = rng.sample([i for i in range(len(records)) if i not in plan], sum(per_kind[1:]))
    for kind, count in zip(KINDS[1:], per_kind[1:]):
        plan.update({i: kind for i in rest[:count]})
        rest = rest[count:]
    out = []
    for i, rec in enumerate(records):
        messages = [dict(m) for m in rec["messages"]]
        kind = plan.get(i)
        new = dict(rec, messages=messages)
        if kind is not None:
            last = messages[-1]
            if kind == "wrong_figure":
                last["content"] = wrong_figure(last["content"], figure_of[i], rng)
            else:
                last["content"] = {"apology": apology, "off_format": off_format,
                                   "truncated": truncated}[kind](last["content"], rng)
            new["metadata"] = {**rec.get("metadata", {}), "planted": kind}
        out.append(new)
    sample = sorted(rng.sample(range(len(out)), round(len(out) * LABELLED_SHARE)))
    labels = [{"id": content_id(out[i]["messages"]), "label": int(i not in plan)} for i in sample]
    return out, labels


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=HERE / "train.jsonl")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    records = [json.loads(line) for line in a.source.read_text(encoding="utf-8").splitlines() if line.strip()]
    pool, labels = build(records, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(a.out / "planted_pool.jsonl", pool)
    write_jsonl(a.out / "planted_labels.jsonl", labels)
    kinds = {k: sum(r.get("metadata", {}).get("planted") == k for r in pool) for k in KINDS}
    print(f"{len(pool)} records, planted {kinds}; {len(labels)} labelled "
          f"({sum(1 - x['label'] for x in labels)} bad) -> {a.out}")


if __name__ == "__main__":
    main()
