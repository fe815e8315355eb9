"""A local model as a judge by likelihood: no sampling, so it always gives a verdict.

It looks like a backend to ``sftflow.judge`` (its ``generate`` returns "[[label]]"
completions), so the pairwise and single-grade paths serve both kinds of judge; the
scoring itself is the multiple-choice machinery of ``choice``.
"""

from __future__ import annotations

from ..backends import Completion
from ..models import load_model, load_tokenizer
from .choice import grouped_loglikelihoods


class LikelihoodJudge:
    """A local judge that answers by likelihood instead of by generating text.

    Small models asked to judge often ramble or echo the instructions and never
    write a verdict (SmolLM2-135M writes no parseable verdict at all). This judge
    renders the same prompt with the model's chat template, appends the verdict
    opener ``[[``, and picks the most likely label ("A", "B", "C", or a grade 1-10)
    by log-likelihood, exactly as multiple-choice questions are scored. Each label is
    scored as the whole verdict it completes, closing brackets included ("10]]", "1]]"):
    the grades are then exclusive strings and the log-likelihood of each is the model's
    probability of writing exactly that grade. Scoring the bare labels would compare
    P("1" as a start) with P("1" then "0"), a product with one more factor, so a grade
    that takes more tokens could never win when it starts with another grade. It still goes
    through the position swap, so a judge biased to one position scores ties. It
    looks like a backend (``generate`` returns "[[label]]" completions), so the
    pairwise and single-grade code paths are the same for both kinds of judge.
    """

    name = "likelihood"
    LABELS = {"pairwise": ["A", "B", "C"], "single": [str(i) for i in range(1, 11)]}

    def __init__(self, model: str | None = None, *, mode: str = "pairwise", batch_size: int = 8,
                 model_obj=None, tokenizer=None):
        self.model = str(model)
        self.labels = self.LABELS[mode]
        self.lm = model_obj if model_obj is not None else load_model(model)
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(model)
        self.batch_size = batch_size

    def generate(self, requests, params):
        groups, labels = [], []
        for msgs in requests:
            labs = self.labels
            if getattr(self.tok, "chat_template", None):
                ctx = self.tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            else:
                ctx = "\n\n".join(m["content"] for m in msgs) + "\n\n"
            groups.append((ctx + "[[", [lab + "]]" for lab in labs]))
            labels.append(labs)
        lls = grouped_loglikelihoods(self.lm, self.tok, groups, batch_size=self.batch_size)
        out = []
        for labs, ll in zip(labels, lls):
            best = max(range(len(labs)), key=lambda i: ll[i])
            detail = " ".join(f"{lab}={v:.2f}" for lab, v in zip(labs, ll))
            out.append(Completion(text=f"[[{labs[best]}]] (log-likelihoods: {detail})", finish_reason="stop"))
        return out
