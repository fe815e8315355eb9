"""ROUGE-L novelty check against every instruction so far, without the quadratic scan.

Self-Instruct keeps a new instruction only if its ROUGE-L F1 with *every* earlier
instruction is at most 0.7. Scoring each candidate against all N earlier ones is
O(N) ROUGE computations per candidate; at 50k instructions that is the whole cost of
the run. We prune with a unigram bound that is exact, so no true match is missed:

  ROUGE-L F1 = 2*L / (m + n), with L the longest common subsequence of the token
  lists (lengths m and n). L <= o, the multiset token overlap, and o <= min(m, n).
  So F1 > t needs  o > t*(m+n)/2  and hence  o > t*n/(2-t)  and
  t*n/(2-t) < m < n*(2-t)/t.   (t = 0.7: o > 0.538 n, 0.538 n < m < 1.857 n)

If a stored text shares more than t*n/(2-t) tokens with the query (k of them at
least), then any n-k+1 of the query's token positions include one of them: the
"prefix filter" of set-similarity joins. We look up only the query's n-k+1 *rarest*
tokens in an inverted index, drop candidates outside the length window or below the
overlap bound, and run the real ROUGE-L (the rouge-score package, the same tokenizer
as the original work) on what is left: typically a handful instead of N.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from rouge_score import rouge_scorer


class RougeIndex:
    def __init__(self, threshold: float = 0.7):
        if not 0 < threshold < 1:
            raise ValueError("threshold must be in (0, 1)")
        self.threshold = threshold
        self.scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.texts: list[str] = []
        self.counts: list[Counter] = []
        self.lengths: list[int] = []
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.rouge_calls = 0           # how many full ROUGE-L scores were computed

    def tokens(self, text: str) -> list[str]:
        return self.scorer._tokenizer.tokenize(text)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> int:
        toks = self.tokens(text)
        i = len(self.texts)
        self.texts.append(text)
        c = Counter(toks)
        self.counts.append(c)
        self.lengths.append(len(toks))
        for t in c:
            self.postings[t].append(i)
        return i

    def candidates(self, text: str) -> list[int]:
        """Stored texts that *could* score above the threshold (a superset of those that do)."""
        toks = self.tokens(text)
        n = len(toks)
        if n == 0:
            return []
        t = self.threshold
        k = math.floor(t * n / (2 - t)) + 1            # least overlap that can pass
        prefix = sorted(toks, key=lambda w: (len(self.postings.get(w, ())), w))[: n - k + 1]
        lo, hi = t * n / (2 - t), n * (2 - t) / t
        qc = Counter(toks)
        out = set()
        for w in set(prefix):
            for i in self.postings.get(w, ()):
                if i in out:
                    continue
                m = self.lengths[i]
                if not lo < m < hi:
                    continue
                overlap = sum(min(v, self.counts[i][u]) for u, v in qc.items())
                if overlap > t * (m + n) / 2:
                    out.add(i)
        return sorted(out)

    def most_similar(self, text: str) -> tuple[float, int | None]:
        """(ROUGE-L F1, index) of the closest candidate; (0.0, None) when none can pass.

        Exact whenever the true maximum is above the threshold; below it the figure
        is the best among the prefiltered candidates (all that the decision needs).
        """
        best, arg = 0.0, None
        for i in self.candidates(text):
            self.rouge_calls += 1
            f = self.scorer.score(self.texts[i], text)["rougeL"].fmeasure
            if f > best:
                best, arg = f, i
        return best, arg

    def is_novel(self, text: str) -> tuple[bool, float, int | None]:
        score, arg = self.most_similar(text)
        return score <= self.threshold, score, arg
