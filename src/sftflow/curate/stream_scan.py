"""Pass 1 of a streaming curate run: judge every record, keep only what the set-wide steps need.

Records are read in batches and run through the configured steps in order, as far as
each can go on its own evidence:

- a per-record filter measures and decides at once; a record it rejects goes no further
  (``fail`` is the position of that step). What a filter cannot decide alone is left
  open: the truncation rule "closes fewer answers than its source" needs the share over
  the whole set, so its candidates go on through the later steps and are settled later;
- for a dedup step only the record's fingerprint is kept: a 16-byte digest of the
  normalised text (exact), one 8-byte key per LSH band (near; the shingles themselves
  are rebuilt later for the few records in a candidate pair), nothing at all for
  semantic dedup (its texts are read again once the earlier steps have decided).

Group membership, the source a record came from and what the keep policies order by
(response length, a score) are kept as numpy columns; reasons are kept only for records
in a group, whose members quote the first member rejected. About 250 bytes a record
with the default steps, against ~1 KB for a typical instruction record on disk.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..schema import Example
from .banding import band_keys, signatures
from .dedup import ExactDedup, NearDedup, SemanticDedup, _get_path, texts_of
from .minhash import _pos_mult, choose_bands, normalized_key, shingle_hashes
from .steps import Filter, Step, group_of, measurements
from .truncation import TruncationFilter, source_of

NONE = np.iinfo(np.int16).max   # ``fail`` of a record no filter rejected on its own evidence
STREAMABLE = (Filter, ExactDedup, NearDedup, SemanticDedup)


def near_bands(step: NearDedup) -> tuple[int, int]:
    p = step.p
    return (p.bands, p.rows) if p.bands else choose_bands(p.threshold, p.num_perm)


class ScanState:
    """Per-record columns of one run, grown batch by batch and joined by ``finish``."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.n = 0
        self.ids: list[str] = []
        self.group_keys: list[Any] = []          # group code -> the group as metadata holds it
        self._group_code: dict[Any, int] = {}
        self.source_names: list[str] = []
        self._source_code: dict[str, int] = {}
        self.reasons: dict[int, str] = {}        # grouped record -> why its ``fail`` step rejected it
        self.tails: dict[int, str] = {}          # grouped truncation candidate -> its answer's tail
        self.bad_scores: dict[tuple[int, int], str] = {}   # (step, record) -> repr of a non-numeric score
        self._parts: dict[str, list[np.ndarray]] = {}
        self.cols: dict[str, np.ndarray] = {}

    def _code(self, value: Any, index: dict, names: list) -> int:
        code = index.get(value)
        if code is None:
            code = index[value] = len(names)
            names.append(value)
        return code

    def _add(self, name: str, arr: np.ndarray) -> None:
        self._parts.setdefault(name, []).append(arr)

    def scan(self, examples: list[Example]) -> None:
        """Judge one batch and append its columns."""
        b, base = len(examples), self.n
        groups = [group_of(ex) for ex in examples]
        self.ids.extend(ex.id for ex in examples)
        self._add("group", np.array([-1 if g is None else self._code(g, self._group_code, self.group_keys)
                                     for g in groups], dtype=np.int32))
        self._add("source", np.array([self._code(source_of(ex), self._source_code, self.source_names)
                                      for ex in examples], dtype=np.int32))
        self._add("resp_len", np.array([len(ex.response) for ex in examples], dtype=np.int64))
        fail = np.full(b, NONE, dtype=np.int16)
        flagged = np.zeros(b, dtype=np.uint32)
        conv = np.zeros(b, dtype=bool)
        vote = np.zeros(b, dtype=np.int8)
        alive = list(range(b))
        for k, step in enumerate(self.steps):
            if isinstance(step, Filter):
                alive = self._filter(k, step, examples, alive, groups, base, fail, flagged, conv, vote)
            elif isinstance(step, ExactDedup):
                self._exact(k, step, examples, alive)
            elif isinstance(step, NearDedup):
                self._near(k, step, examples, alive)
            if isinstance(step, (NearDedup, SemanticDedup)):
                self._scores(k, step, examples, base)
        for name, arr in (("fail", fail), ("flagged", flagged), ("conv", conv), ("vote", vote)):
            self._add(name, arr)
        self.n += b

    def _filter(self, k: int, step: Filter, examples: list[Example], alive: list[int], groups: list,
                base: int, fail, flagged, conv, vote) -> list[int]:
        exs = [examples[j] for j in alive]
        still = []
        trunc = isinstance(step, TruncationFilter)
        for j, ex, m in zip(alive, exs, step.measure_many(exs)):
            # As the one-shot run does: a later step's keep policy may read what this one measured.
            measurements(ex, step.name).update(m)
            if trunc:
                vote[j] = step.convention_vote(ex)
                conv[j] = step.evidence_before_convention(ex)[1]
                if conv[j] and groups[j] is not None:
                    self.tails[base + j] = ex.response.rstrip()[-30:]
            decision = step.decide(ex, m)
            if decision is True:
                still.append(j)
                if m.get("flagged"):
                    flagged[j] |= np.uint32(1 << k)
                continue
            if not isinstance(decision, tuple) or decision[0] is not False:
                raise TypeError(f"{type(step).__name__}.decide must return True or (False, reason), "
                                f"got {decision!r}")
            fail[j] = k
            if groups[j] is not None:
                self.reasons[base + j] = decision[1]
        return still

    def _exact(self, k: int, step: ExactDedup, examples: list[Example], alive: list[int]) -> None:
        # A 16-byte digest stands in for the normalised text: a collision is a 2^-64 event.
        keys = np.zeros((len(examples), 2), dtype=np.uint64)
        texts = texts_of([examples[j] for j in alive], step.p.field)
        digests = b"".join(hashlib.blake2b(normalized_key(t), digest_size=16).digest() for t in texts)
        if alive:
            keys[alive] = np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)
        self._add(f"exact{k}", keys)

    def _near(self, k: int, step: NearDedup, examples: list[Example], alive: list[int]) -> None:
        p = step.p
        bands, rows = near_bands(step)
        keys = np.zeros((len(examples), bands), dtype=np.uint64)
        nonempty = np.zeros(len(examples), dtype=bool)
        if alive:
            flat, off = shingle_hashes(texts_of([examples[j] for j in alive], p.field), p.ngram)
            full = np.diff(off) > 0
            idx = np.asarray(alive)[full]
            if len(idx):
                # Empty sets hold no shingles, so the non-empty ones are contiguous in ``flat``.
                sub_off = np.append(off[:-1][full], off[-1])
                sig = signatures(flat, sub_off, bands * rows, p.seed)
                keys[idx] = band_keys(sig, bands, rows, _pos_mult(rows))
                nonempty[idx] = True
        self._add(f"near{k}", keys)
        self._add(f"nonempty{k}", nonempty)

    def _scores(self, k: int, step: Step, examples: list[Example], base: int) -> None:
        p = step.p
        if p.keep != "highest_score":
            return
        out = np.zeros(len(examples), dtype=np.float64)
        for j, ex in enumerate(examples):
            v = _get_path(ex.metadata, p.score_key or "")
            if isinstance(v, (int, float)):
                out[j] = float(v)
            else:
                self.bad_scores[(k, base + j)] = repr(v)
        self._add(f"score{k}", out)

    def finish(self) -> None:
        """Join the batches' parts into one array per column, letting each column's parts go
        as it is joined (so the peak holds the columns plus one column's parts, not twice all)."""
        for name in list(self._parts):
            self.cols[name] = np.concatenate(self._parts.pop(name))
        if self.n == 0:
            for name, dtype in (("fail", np.int16), ("flagged", np.uint32), ("conv", bool), ("vote", np.int8),
                                ("group", np.int32), ("source", np.int32), ("resp_len", np.int64)):
                self.cols.setdefault(name, np.zeros(0, dtype=dtype))

    def score(self, k: int, i: int) -> Any:
        """The record's score for step ``k``'s keep policy (a stand-in that prints as the
        stored value when it was not a number, so the error can say what was there)."""
        bad = self.bad_scores.get((k, i))
        return _Shown(bad) if bad is not None else float(self.cols[f"score{k}"][i])


class _Shown:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text
