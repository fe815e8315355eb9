"""Atomic file and folder writes: a reader sees the old output or the new one, never half.

The recipe for a file: write to a temporary name in the same folder (a rename is
atomic only within one file system), flush and fsync it (so the rename cannot reach
the disk before the data does), rename over the target, fsync the folder (so the
rename itself survives a power cut). On any error the temporary file is removed and
the old output is left as it was. The temporary name carries the process id and a
random part: two processes writing the same output (ranks of a distributed launch, a
rerun beside a live run) each rename a complete file and never share a temporary, and
the next write of the same output removes the temporaries of writers that died (a
SIGKILL leaves no chance to clean up).

A folder (a saved model or adapter) is written into a temporary sibling and renamed
into place when complete. POSIX cannot swap a non-empty folder atomically, so an
existing target is first renamed aside and removed after the swap; a kill between the
two renames leaves the old folder under ``.<name>.old-*`` and no target, which the
next ``atomic_dir`` of the same target puts back before it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _tmp_name(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:             # some file systems do not open folders; the rename still happened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to hand a library that writes by name (Parquet, numpy); renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _tmp_name(path, "tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose content replaces ``path`` only when the block ends without error."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, default=None) -> Path:
    """JSON serialised in full first (an unserialisable value fails before anything is touched)."""
    text = json.dumps(obj, indent=indent, default=default)
    return atomic_write_text(path, text + "\n")


def _restore_orphan(path: Path) -> None:
    """A kill between the two renames of a folder swap left the old folder aside: put it back."""
    if path.exists():
        return
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        os.replace(olds[-1], path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of ``path`` that a killed writer left behind (its process is gone); removed.

    A temporary of a live process (another rank writing the same output now) is left alone.
    """
    path = Path(path)
    stale = []
    for kind in ("tmp", "dir"):
        for p in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = p.name.rsplit(f".{kind}-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                stale.append(p)
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder to fill; it becomes ``path`` only when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _restore_orphan(path)
    remove_stale_temporaries(path)
    tmp = _tmp_name(path, "dir")
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = _tmp_name(path, "old")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@contextlib.contextmanager
def staged_into(dest: str | Path) -> Iterator[Path]:
    """A temporary folder inside ``dest`` whose files are moved into ``dest`` when complete.

    For outputs that live beside other things in a run folder (a saved model next to its
    logs and checkpoints), where the folder itself cannot be swapped: each file arrives
    whole by rename, the weights last, so weights in ``dest`` mean the save finished.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest / "staged")
    tmp = _tmp_name(dest / "staged", "dir")
    tmp.mkdir()
    try:
        yield tmp
        entries = sorted(tmp.iterdir(), key=lambda p: (p.suffix in WEIGHT_SUFFIXES, p.name))
        for p in entries:
            if p.is_file():
                with open(p, "rb+") as fh:
                    os.fsync(fh.fileno())
            target = dest / p.name
            if p.is_dir() and target.exists():
                shutil.rmtree(target)
            os.replace(p, target)
        fsync_dir(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
