"""Build the demo's general replay set: the embedded model's own answers to general prompts.

Fine-tuning on one domain pulls a small model away from everything else. Mixing in a few
percent of *its own* answers to general prompts (self-distillation) anchors those
behaviours without teaching it anything new: the replay targets are what the base model
already says. ``general_prompts.txt`` was written for sftflow (diverse, no finance, no
overlap with the general probe's conversations in ``sftflow/evaluate/data``).

The answers are generated once, greedily, with the embedded SmolLM2-135M-Instruct and
shipped as ``general_replay.jsonl``, so the demo does not spend CPU minutes on them.
Answers that ran into the token limit are left out (replaying a truncated answer would
teach truncation); the count is printed.

    python src/sftflow/data/demo/build_replay.py [--out DIR] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_NEW_TOKENS = 192
BATCH = 8


def main(argv: list[str] | None = None) -> int:
    from sftflow.backends import GenParams
    from sftflow.backends.transformers_backend import TransformersBackend
    from sftflow.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)
    prompts = [p.strip() for p in (HERE / "general_prompts.txt").read_text("utf-8").splitlines() if p.strip()]
    backend = TransformersBackend(model=args.model, batch_size=BATCH)
    done = []
    for start in range(0, len(prompts), BATCH):
        done += backend.generate([[{"role": "user", "content": p}] for p in prompts[start:start + BATCH]],
                                 GenParams(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0))
        print(f"{len(done)} of {len(prompts)} answered", flush=True)
    kept = 0
    with (args.out / "general_replay.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for i, (p, c) in enumerate(zip(prompts, done)):
            if c.finish_reason != "stop" or not c.text.strip():
                continue
            kept += 1
            f.write(json.dumps({"messages": [{"role": "user", "content": p},
                                             {"role": "assistant", "content": c.text.strip()}],
                                "metadata": {"group": f"replay:{i}", "source": "general_replay",
                                             "generated_by": f"{args.model} (greedy, {MAX_NEW_TOKENS} tokens)"}},
                               ensure_ascii=False) + "\n")
    print(f"{kept} of {len(prompts)} answers kept ({len(prompts) - kept} ran into the token limit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
