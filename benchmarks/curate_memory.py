"""Peak memory of ``sftflow curate`` against the size of its input file.

Generates a JSONL pool of distinct instruction records (about 1 KB each; a tenth are
exact copies so dedup has work), runs ``sftflow curate`` on it in a fresh process with
the default steps (``stats=false``: statistics are a separate pass over the kept set), and
reads the child's peak resident set size from the kernel (``ru_maxrss``). The same
command on a one-record file gives the fixed cost (Python, tokenizer, libraries); what
the data adds is the difference.

    python benchmarks/curate_memory.py                       # 0.02 GB, about two minutes here
    python benchmarks/curate_memory.py --size-gb 1           # the figure the readers were sized for
    python benchmarks/curate_memory.py --size-gb 0.1 0.3     # two sizes: is the added RSS flat?

``sftflow curate`` streams (pass 1 keeps a few hundred bytes per record, pass 2 writes),
so what the data adds should grow with the record count at that rate, not with the
file's bytes held as Python objects (which cost ~8x the file). With two or more sizes
the growth between the smallest and the largest is printed as MB per GB of input.

The last line is JSON: ours = MB the data adds to peak RSS (largest size), peer = the
file's size in MB, ratio = ours / peer, target 1.0 (memory bounded by the file, not a
multiple of it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("data model train answer question river city music energy market garden science history "
         "language number table window system policy report letter season travel health school "
         "engine memory signal planet ocean forest coffee camera bridge castle doctor teacher").split()


def generate(path: Path, size_bytes: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    n, written = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        recent: list[str] = []
        while written < size_bytes:
            if recent and rng.random() < 0.1:
                line = rng.choice(recent)
            else:
                prompt = f"Record {n}: explain " + " ".join(rng.choices(WORDS, k=rng.randint(30, 90))) + "?"
                answer = " ".join(rng.choices(WORDS, k=rng.randint(40, 120))).capitalize() + "."
                line = json.dumps({"prompt": prompt, "completion": answer}) + "\n"
                recent = (recent + [line])[-100:]
            f.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return n


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one child process running ``args``."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "dt = time.perf_counter() - t\n"
            "sys.stderr.write(r.stderr[-2000:])\n"
            "print(json.dumps({'rc': r.returncode, 'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
            " 'seconds': dt, 'out': r.stdout[-300:]}))\n")
    # A fresh wrapper per run: RUSAGE_CHILDREN is the largest child it ever waited for.
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=os.environ | {"HF_HUB_OFFLINE": "1"})
    info = json.loads(res.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise SystemExit(f"sftflow curate failed:\n{res.stderr}")
    return info["kb"] / 1024, info["seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, nargs="+", default=[0.02])
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep the generated files in")
    a = ap.parse_args()
    folder = Path(a.keep or tempfile.mkdtemp(prefix="curate-mem-"))
    folder.mkdir(parents=True, exist_ok=True)
    tiny = folder / "one.jsonl"
    generate(tiny, 1)
    cmd = [sys.executable, "-m", "sftflow", "curate"]
    base, _ = peak_rss_mb(cmd + [str(tiny), "-o", str(folder / "out-one"), "--quiet", "--set", "stats=false"])
    print(f"fixed cost (one record): {base:.0f} MB")
    runs = []
    for gb in sorted(a.size_gb):
        big = folder / f"pool-{gb:g}gb.jsonl"
        t0 = time.perf_counter()
        n = generate(big, int(gb * 1e9))
        size_mb = big.stat().st_size / 1e6
        print(f"generated {n:,} records, {size_mb:.1f} MB in {time.perf_counter() - t0:.1f}s")
        peak, seconds = peak_rss_mb(cmd + [str(big), "-o", str(folder / f"out-{gb:g}"), "--quiet",
                                           "--set", "stats=false"])
        added = peak - base
        runs.append((size_mb, added))
        print(f"peak RSS {peak:.0f} MB on {size_mb:.1f} MB ({seconds:.1f}s, {n / seconds:,.0f} records/s); "
              f"the data adds {added:.0f} MB = {added / size_mb:.2f} x the file", flush=True)
        big.unlink()
    if len(runs) > 1:
        (s0, a0), (s1, a1) = runs[0], runs[-1]
        print(f"growth from {s0:.0f} MB to {s1:.0f} MB of input: {(a1 - a0) / (s1 - s0) * 1000:.0f} MB "
              "of RSS per GB of input")
    size_mb, added = runs[-1]
    print(json.dumps({"benchmark": "curate_peak_rss", "ours": round(added, 1), "peer": round(size_mb, 1),
                      "unit": "MB", "ratio": round(added / size_mb, 3), "target": 1.0}))


if __name__ == "__main__":
    main()
