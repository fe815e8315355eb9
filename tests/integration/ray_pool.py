"""A synthetic pool for the Ray parity tests: every way curate drops a record, at once."""

from __future__ import annotations

import os
import random

from sftflow.curate.filters import EmptyFilter
from sftflow.io import write_examples
from sftflow.schema import Example

VOCAB = [f"w{i}" for i in range(400)]

# The steps the parity tests run: one of each kind of drop a pool can show.
STEPS = ["empty", "truncation", "refusal", "exact_dedup", "near_dedup"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def pool(n_base: int = 120, seed: int = 0) -> list[Example]:
    """Originals, exact copies (case and punctuation changed), near copies (a chain A~B~C,
    so representatives matter), short and refused answers, and groups with one bad member."""
    rng = random.Random(seed)
    out: list[Example] = []
    for i in range(n_base):
        prompt = f"Question {i}: " + sentence(rng, 30) + "?"
        answer = "The answer is " + sentence(rng, 25) + "."
        meta = {"group": f"g{i % 5}"} if i % 4 == 0 else {}
        out.append(Example.single(prompt, answer, metadata=dict(meta)))
        kind = i % 6
        if kind == 0:
            out.append(Example.single(prompt.upper().replace(":", " ;"), "Another answer " + sentence(rng, 20) + "."))
        elif kind == 1:   # a chain A~B~C with C not similar to A: the representative decides
            w = prompt.split()
            for pos in (10, 20):
                w[pos] = f"x{i}{pos}"
                out.append(Example.single(" ".join(w), "Reply " + sentence(rng, 22 + pos) + "."))
        elif kind == 2:
            out.append(Example.single(f"Short one {i} " + sentence(rng, 8) + "?", "ok",
                                      metadata={"group": f"g{i % 5}"} if i % 4 == 0 else {}))
        elif kind == 3:
            out.append(Example.single(f"Refuse {i} " + sentence(rng, 10) + "?",
                                      "I'm sorry, but I cannot help with " + sentence(rng, 12) + "."))
    rng.shuffle(out)
    return out


def write_shards(examples: list[Example], folder, shards: int = 3) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(examples) // shards)
    paths = []
    for k in range(shards):
        p = folder / f"part-{k:05d}.jsonl"
        write_examples(p, examples[k * size:(k + 1) * size])
        paths.append(p)
    return paths


class DyingEmptyFilter(EmptyFilter):
    """The empty filter, whose worker process dies the first time it meets a batch
    (the first process to create ``marker``): Ray must retry the task elsewhere."""

    def __init__(self, params, marker: str):
        super().__init__(params)
        self.marker = marker

    def measure_many(self, examples):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().measure_many(examples)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)       # the worker process dies mid-run, as a preempted node would


def dying_score_worker(fail_at: int):
    """A score worker class whose actor raises on shard ``fail_at``, as a run killed there
    would stop: the shards before it are written, that one and the later ones are not."""
    from sftflow.select.ray_score import ScoreWorker

    class DyingScoreWorker(ScoreWorker):
        def __call__(self, batch):
            if int(batch["shard"][0]) == fail_at:
                raise RuntimeError(f"killed at shard {fail_at}")
            return super().__call__(batch)

    return DyingScoreWorker
