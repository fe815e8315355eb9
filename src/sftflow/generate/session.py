"""One generation run: a backend behind the response cache, dead letters, counts.

Every method (Self-Instruct, paraphrase, round trip, instruction backtranslation)
asks for completions through ``Session.complete``, which

- answers from the SQLite cache in OUT_DIR where it can, and stores every new answer
  the moment it arrives, so a killed run restarted with the same options replays
  what it had and continues where it stopped;
- first re-asks the requests that the previous run dead-lettered (they were never
  cached), so a rerun after an outage fills the gaps;
- counts requests, cache hits, retries and failures for the manifest, and shows a
  progress bar with the throughput in tokens per second.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..backends import GenParams, get_backend
from ..backends.cache import CachedBackend, ResponseCache, cache_key
from ..io.append_log import iter_log, repair_torn_tail
from ..io.writers import write_jsonl

CACHE_FILE = "cache.sqlite"
DEAD_LETTER_FILE = "dead_letter.jsonl"
RETRYING_FILE = "dead_letter.retrying.jsonl"     # letters being asked again; exists only mid-retry
PREVIOUS_FILE = "dead_letter.previous.jsonl"     # the letters the last retry pass took over


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def build_backend(cfg, out_dir: Path):
    """A backend from a ``BackendConfig``; the HTTP one dead-letters into OUT_DIR."""
    if cfg.kind == "transformers":
        return get_backend("transformers", model=cfg.model, batch_size=cfg.batch_size,
                           device=cfg.device)
    if cfg.kind == "openai":
        return get_backend("openai", model=cfg.model, base_url=cfg.base_url,
                           api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                           max_retries=cfg.max_retries, timeout=cfg.timeout,
                           backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max,
                           dead_letter_path=out_dir / DEAD_LETTER_FILE)
    raise ValueError(f"unknown backend kind {cfg.kind!r}")


class Session:
    def __init__(self, out_dir: str | Path, backend, *, show_progress: bool = True,
                 notify: Callable[[str], None] = _warn):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.raw = backend
        self.cache = ResponseCache(self.out_dir / CACHE_FILE)
        self.backend = CachedBackend(backend, self.cache)
        self.show_progress = show_progress
        self.notify = notify
        self.counts: dict[str, Any] = {"requests": 0, "cache_hits": 0, "generated": 0,
                                       "failures": 0, "dead_letter_retried": 0,
                                       "dead_letter_recovered": 0, "torn_lines_repaired": 0}
        self.t0 = time.perf_counter()
        self.progress: Progress | None = None
        if show_progress:
            # One live display for the whole run: methods add their own bars to it.
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[speed]}"))
            self.progress.start()
        self._take_over_dead_letters()

    # ------------------------------------------------------------------ dead letters

    def _take_over_dead_letters(self) -> None:
        """Ask the last run's dead letters again, first, each exactly once.

        The letters are merged into ``dead_letter.retrying.jsonl`` (written atomically)
        before ``dead_letter.jsonl`` is removed, and that file is only retired once the
        retry pass is over: a run killed at any point leaves its letters where the next
        run takes them over. A letter whose line was torn by a kill is cut off (its
        request never reached the cache, so the method asks it again anyway).
        """
        live, retrying = self.out_dir / DEAD_LETTER_FILE, self.out_dir / RETRYING_FILE
        for path in (retrying, live):
            torn = repair_torn_tail(path)
            if torn is not None:
                self.counts["torn_lines_repaired"] += 1
                self.notify(torn.notice())
        letters: dict[str, dict] = {}               # one per request: a letter written twice asks once
        for path in (retrying, live):
            for row in iter_log(path):
                req = row["request"]
                letters.setdefault(cache_key(self.raw.name, "", req["params"], req["messages"]), req)
        if not letters:
            for path in (retrying, live):
                path.unlink(missing_ok=True)
            return
        write_jsonl(retrying, [{"request": r} for r in letters.values()])
        live.unlink(missing_ok=True)                # new failures of this run go to a fresh file
        groups: dict[str, tuple[GenParams, list]] = {}
        for req in letters.values():
            p = GenParams(**req["params"])
            groups.setdefault(json.dumps(req["params"], sort_keys=True), (p, []))[1].append(req["messages"])
        recovered = 0
        for params, reqs in groups.values():
            res = self._run(reqs, params, "retrying dead letters")
            recovered += sum(c.finish_reason != "error" for c in res)
        self.counts["dead_letter_retried"] += len(letters)
        self.counts["dead_letter_recovered"] += recovered
        retrying.replace(self.out_dir / PREVIOUS_FILE)   # kept for inspection, never read again

    # ------------------------------------------------------------------ completions

    def _run(self, requests, params: GenParams, what: str):
        hits0, miss0 = self.backend.hits, self.backend.misses
        bar = self.progress
        if bar is None or not requests:
            out = self.backend.generate(requests, params)
        else:
            task = bar.add_task(what, total=len(requests), speed="")

            def tick(_i, _c):
                tps = getattr(self.raw, "tokens_per_second", 0.0)
                bar.update(task, advance=1, speed=f"{tps:.1f} tok/s" if tps else "")
            try:
                out = self.backend.generate(requests, params, on_result=tick)
            finally:
                bar.remove_task(task)
        self.counts["cache_hits"] += self.backend.hits - hits0
        self.counts["generated"] += self.backend.misses - miss0
        return out

    def complete(self, requests: list[list[dict[str, str]]], params: GenParams, what: str = "generating"):
        self.counts["requests"] += len(requests)
        out = self._run(requests, params, what)
        self.counts["failures"] += sum(c.finish_reason == "error" for c in out)
        return out

    # ------------------------------------------------------------------ reporting

    def backend_stats(self) -> dict[str, Any]:
        stats = dict(getattr(self.raw, "stats", {}) or {})
        tps = getattr(self.raw, "tokens_per_second", None)
        if tps is not None:
            stats["tokens_per_second"] = round(float(tps), 2)
        return stats

    def describe_backend(self) -> dict[str, Any]:
        if hasattr(self.raw, "describe"):
            return self.raw.describe()
        return {"backend": self.raw.name, "model": self.raw.model}

    def summary_counts(self) -> dict[str, Any]:
        stats = self.backend_stats()
        c = dict(self.counts)
        c["retries"] = int(stats.get("retries", 0))
        c["http_attempts"] = int(stats.get("requests", 0)) if self.raw.name == "openai" else None
        c["dead_lettered"] = sum(1 for _ in iter_log(self.out_dir / DEAD_LETTER_FILE))
        c["completion_tokens"] = int(stats.get("completion_tokens", 0))
        c["tokens_per_second"] = stats.get("tokens_per_second")
        c["seconds"] = round(time.perf_counter() - self.t0, 2)
        return {k: v for k, v in c.items() if v is not None}

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        self.cache.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_outputs(session: Session, *, method: str, cfg, records, rejected, inputs=(),
                  extra_counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """records.jsonl, rejected.jsonl and manifest.json in the session's folder."""
    from ..io import write_examples, write_manifest, write_rejected
    out = session.out_dir
    write_examples(out / "records.jsonl", records)
    write_rejected(out / "rejected.jsonl", rejected)
    counts = session.summary_counts()
    counts.update(extra_counts or {})
    counts["records"] = len(records)
    counts["rejected"] = len(rejected)
    write_manifest(out, stage=f"generate:{method}", inputs=[str(p) for p in inputs if p],
                   config=cfg, counts=counts, extra={"backend": session.describe_backend()})
    return counts
