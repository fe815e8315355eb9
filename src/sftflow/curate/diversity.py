"""The curate step ``diversity``: keep a diverse subset by K-Center-Greedy or a cap per cluster.

The geometry (``k_center_greedy``, ``one_pass_cluster``) lives in ``sftflow.diversity``,
shared with selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..diversity import k_center_greedy, one_pass_cluster
from ..embed import embed_texts, example_text
from ..schema import Example
from .config import DiversityParams
from .steps import Step, StepResult, measurements, reject


class DiversityStep(Step):
    """Keep a diverse subset: K-Center-Greedy to a budget, or at most N per one-pass cluster."""

    name = "diversity"

    def __init__(self, params: DiversityParams, embeddings: Any = None):
        self.p = params
        self._emb_fn = embeddings  # injectable (cache) -> callable(texts) -> ndarray

    def _embed(self, examples: list[Example]) -> np.ndarray:
        texts = [example_text(ex, self.p.field) for ex in examples]
        if self._emb_fn is not None:
            return self._emb_fn(texts, method=self.p.method, model=self.p.model)
        return embed_texts(texts, self.p.model, method=self.p.method, batch_size=self.p.batch_size)

    def run(self, examples: list[Example]) -> StepResult:
        if not examples:
            return StepResult(kept=[])
        emb = self._embed(examples)
        p = self.p
        # Cluster view always goes to metadata: it is what a person reads to see
        # why a record was or was not picked.
        ids, dist = one_pass_cluster(emb, p.cluster_threshold)
        for ex, c, d in zip(examples, ids, dist):
            m = measurements(ex, self.name)
            m["cluster"] = int(c)
            m["centroid_distance"] = round(float(d), 4)
        if p.algorithm == "k_center":
            budget = int(p.budget) if p.budget >= 1 else max(1, round(p.budget * len(examples)))
            picked = k_center_greedy(emb, budget, seed=p.seed)
            rank = {i: r for r, i in enumerate(picked)}
            keep = set(picked)
            for i, ex in enumerate(examples):
                if i in rank:
                    measurements(ex, self.name)["k_center_rank"] = rank[i]
            reason = f"not among the {budget} k-center picks"
        else:
            limit = p.per_cluster
            counts: dict[int, int] = {}
            keep = set()
            for i, c in enumerate(ids):
                counts[int(c)] = counts.get(int(c), 0) + 1
                if limit is None or counts[int(c)] <= limit:
                    keep.add(i)
            reason = f"cluster already has {limit} records (one-pass, similarity >= {p.cluster_threshold})"
        out = StepResult(kept=[])
        for i, ex in enumerate(examples):
            if i in keep:
                out.kept.append(ex)
            else:
                m = measurements(ex, self.name)
                out.rejected.append(reject(ex, self.name, reason,
                                           {"cluster": m["cluster"],
                                            "centroid_distance": m["centroid_distance"]}))
        return out
