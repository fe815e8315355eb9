"""Build a training mix from several sources with target proportions and a total.

Counts are exact: proportions are turned into integers by the largest-remainder rule,
so they always add up to ``total``. A source with fewer records than its share is
upsampled (every record repeated, the remainder drawn without replacement) and a
warning says by how much, since repeating data is a choice a person should see. The
copies of one record get distinct ids (``<id>``, ``<id>.1``, ...), ``mix_of`` naming the
original and a shared ``group``. The result is shuffled with the seed; every record
keeps ``_source`` in metadata.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..schema import Example


@dataclass
class MixReport:
    total: int
    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def exact_counts(weights: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder apportionment: integer counts proportional to weights, summing to total."""
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not weights:
        raise ValueError("no sources to mix")
    bad = {k: w for k, w in weights.items() if not (w >= 0 and math.isfinite(w))}
    if bad:
        raise ValueError(f"proportions must be finite and >= 0: {bad}")
    s = sum(weights.values())
    if s <= 0:
        raise ValueError("proportions sum to zero")
    quotas = {k: w / s * total for k, w in weights.items()}
    counts = {k: int(math.floor(q)) for k, q in quotas.items()}
    left = total - sum(counts.values())
    # Ties on the remainder go to the earlier source, so the result never depends on hashing.
    order = sorted(weights, key=lambda k: (-(quotas[k] - counts[k]), list(weights).index(k)))
    for k in order[:left]:
        counts[k] += 1
    return counts


def create_balanced_sft_mix(sources: dict[str, list[Example]], proportions: dict[str, float], total: int,
                            *, seed: int = 0) -> tuple[list[Example], MixReport]:
    missing = set(proportions) - set(sources)
    if missing:
        raise ValueError(f"proportions name unknown sources: {sorted(missing)}")
    counts = exact_counts({k: proportions[k] for k in sources if k in proportions}, total)
    rng = random.Random(seed)
    report = MixReport(total=total)
    mixed: list[Example] = []
    for name, want in counts.items():
        pool = sources[name]
        have = len(pool)
        if want and not have:
            raise ValueError(f"source '{name}' is empty but its share is {want} records")
        if want <= have:
            idx = sorted(rng.sample(range(have), want))
            factor = 1.0
        else:
            reps, rest = divmod(want, have)
            idx = list(range(have)) * reps + sorted(rng.sample(range(have), rest))
            factor = want / have
            report.warnings.append(f"source '{name}' has {have} records but its share is {want}: "
                                   f"upsampled x{factor:.2f} (each record used {reps}-{reps + (rest > 0)} times)")
        copies: dict[int, int] = {}
        uses = Counter(idx)
        for i in idx:
            ex = copy.deepcopy(pool[i])
            ex.metadata["_source"] = name
            k = copies.get(i, 0)
            copies[i] = k + 1
            if factor > 1:
                ex.metadata["mix_copy"] = k
            if uses[i] > 1:
                # The copies of one record are one source: they share a group (its own, or
                # the original's id), so splits and group-aware steps keep them together,
                # and each gets its own id, so a rejection or a score names one row.
                ex.metadata.setdefault("group", pool[i].id)
                ex.metadata["mix_of"] = pool[i].id
                if k:
                    ex.id = f"{pool[i].id}.{k}"
            mixed.append(ex)
        report.per_source[name] = {"available": have, "taken": want,
                                   "proportion": round(want / total, 6) if total else 0.0,
                                   "upsample_factor": round(factor, 4)}
    rng.shuffle(mixed)
    return mixed, report


def parse_source_spec(spec: str) -> tuple[str, float]:
    """'path.jsonl:0.3' -> (path, 0.3); a missing weight means 1."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return spec, 1.0
