"""Run an sftflow command in a child process that kills itself with SIGKILL at a chosen point.

Children are forked from a forkserver that imported torch, transformers and sftflow
once, so a child starts in milliseconds instead of the ~4 s an interpreter needs to
import them: the kill-and-resume tests can afford a dozen children. The forkserver
itself never ran a torch op, so forking it is safe (OpenMP pools do not survive a
fork of a process that used them).

A hook is Python source run in the child before the command; it calls the helpers
below (``die``, ``counted``, ``die_on_rename``, ``die_mid_save``) to count the model
calls each run makes (a file of tallies, which outlives the kill) and to SIGKILL the
process at a deterministic moment: a kill that depends on polling from outside lands
on a different step on a loaded machine.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import signal
import sys
from pathlib import Path

PRELOAD = ["torch", "transformers", "transformers.models.llama.modeling_llama", "sftflow.cli",
           "sftflow.train.sft", "sftflow.select.scorers", "sftflow.evaluate.run",
           "sftflow.backends.transformers_backend", "sftflow.pipeline.stages.generate"]
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(PRELOAD)


def die() -> None:
    """SIGKILL this process now: no exit handlers, no finally blocks, no flushing."""
    os.kill(os.getpid(), signal.SIGKILL)


def tally(path: str | Path, n: int) -> None:
    """Add ``n`` to the count in ``path`` (one line per unit; the kernel keeps it past a kill)."""
    with open(path, "a") as f:
        f.write("x\n" * n)


def total(path: str | Path) -> int:
    p = Path(path)
    return len(p.read_text().splitlines()) if p.exists() else 0


def counted(owner, attr: str, path: str | Path, *, size=lambda *a, **k: 1, die_at: int | None = None) -> None:
    """Wrap ``owner.attr``: each call tallies ``size(*args)`` into ``path`` first; the
    ``die_at``-th call is killed after its tally (its work is in flight, never finished)."""
    real = getattr(owner, attr)
    calls = [0]

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        calls[0] += 1
        tally(path, size(*args, **kwargs))
        if calls[0] == die_at:
            die()
        return real(*args, **kwargs)
    setattr(owner, attr, wrapper)


def die_on_rename(name: str, nth: int = 1) -> None:
    """Kill while an atomic write of a file called ``name`` is under way: the temporary holds
    half the bytes and was never renamed over the output (the worst moment of a write)."""
    real = os.replace
    seen = [0]

    def replace(src, dst, *a, **k):
        if Path(dst).name == name:
            seen[0] += 1
            if seen[0] == nth:
                src = Path(src)
                if src.is_file():
                    os.truncate(src, src.stat().st_size // 2)
                die()
        return real(src, dst, *a, **k)
    os.replace = replace


def die_mid_save(suffix: str) -> None:
    """Kill while ``torch.save`` writes a file whose path ends with ``suffix``, half of it on disk."""
    import torch
    real = torch.save

    def save(obj, f, *a, **k):
        real(obj, f, *a, **k)
        if str(f).endswith(suffix):
            os.truncate(f, os.path.getsize(f) // 2)
            die()
    torch.save = save


def _child(argv: list[str], env: dict[str, str], hook: str, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)
    import torch
    torch.set_num_threads(1)        # tiny models; on a shared machine more threads only spin and wait
    exec(compile(hook, "<hook>", "exec"), {"__name__": "__hook__", "kr": sys.modules[__name__]})  # noqa: S102
    sys.argv = ["sftflow", *argv]
    from sftflow.cli import main
    main()


def run(argv: list[str], *, log: str | Path, env: dict[str, str] | None = None, hook: str = "",
        timeout: float = 300) -> int:
    """Run ``sftflow ARGV`` in a fresh child; returns its exit code (-9 when it was killed)."""
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    p = _CTX.Process(target=_child, args=(list(map(str, argv)), env, hook, str(log)))
    p.start()
    p.join(timeout)
    if p.exitcode is None:
        p.kill()
        p.join()
        raise TimeoutError(f"sftflow {' '.join(map(str, argv))} ran past {timeout} s; log: {log}")
    return p.exitcode


def log_tail(log: str | Path, n: int = 3000) -> str:
    p = Path(log)
    return p.read_text(errors="replace")[-n:] if p.exists() else "(no log)"
