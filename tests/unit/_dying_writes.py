"""A fault for kill-and-resume children: SIGKILL while an output file is half-written.

Imported inside the child process (its folder is put on the child's ``sys.path`` through
``HELPERS``), so every test kills at the same kind of point: after the N-th write to one named
file, with what was written so far flushed to the atomic writer's temporary file.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

HELPERS = str(Path(__file__).resolve().parent)


def die_writing(name: str, after_writes: int) -> None:
    """Make ``sftflow.io.writers`` SIGKILL this process after ``after_writes`` writes to ``name``."""
    import sftflow.io.writers as writers
    real = writers.atomic_open

    @contextlib.contextmanager
    def dying(path, mode="w", encoding="utf-8"):
        with real(path, mode, encoding) as f:
            if Path(path).name != name:
                yield f
                return

            class Dies:
                n = 0

                def write(self, s):
                    f.write(s)
                    f.flush()
                    Dies.n += 1
                    if Dies.n == after_writes:
                        os.kill(os.getpid(), signal.SIGKILL)

            yield Dies()

    writers.atomic_open = dying
