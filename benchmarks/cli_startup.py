"""How fast `sftflow --help` answers, against parsing after importing the training stack.

ours: wall time of `python -m sftflow --help` (verbs import torch only when they run).
peer: the same interpreter importing sftflow.train.sft and sftflow.evaluate.run first,
which is what answering --help costs when the entry point loads the stack before parsing.
Median of --repeats runs each, interleaved so machine load hits both alike. Target: < 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

OURS = [sys.executable, "-m", "sftflow", "--help"]
PEER = [sys.executable, "-c", "import sftflow.train.sft, sftflow.evaluate.run, sys; "
        "sys.argv = ['sftflow', '--help']; from sftflow.cli import main; main()"]


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ours, peer = [], []
    for _ in range(args.repeats):
        ours.append(wall(OURS))
        peer.append(wall(PEER))
    o, p = statistics.median(ours), statistics.median(peer)
    print(json.dumps({"benchmark": "cli_help_wall_time", "ours": round(o, 3), "peer": round(p, 3), "unit": "s",
                      "ratio": round(o / p, 3), "target": 1.0}))


if __name__ == "__main__":
    main()
