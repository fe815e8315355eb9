"""`sftflow generate self-instruct | paraphrase | roundtrip | backtranslate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..config import validate

# Options every generate verb shares; declared once so the four verbs cannot drift apart.
OUT = typer.Option(..., "-o", "--out", help="output folder (records, rejects, dead letters, cache, manifest)")
BACKEND = typer.Option("transformers", "--backend", help="transformers (local) or openai (HTTP server)")
MODEL = typer.Option(None, "--model", help="model name or folder; default the embedded SmolLM2-135M")
BASE_URL = typer.Option("http://127.0.0.1:8000/v1", "--base-url", help="OpenAI-compatible endpoint")
API_KEY_ENV = typer.Option("OPENAI_API_KEY", "--api-key-env", help="environment variable with the API key")
CONCURRENCY = typer.Option(8, "--concurrency", help="requests in flight (HTTP backend)")
MAX_RETRIES = typer.Option(5, "--max-retries", help="retries before a request is dead-lettered")
TIMEOUT = typer.Option(120.0, "--timeout", help="seconds per HTTP request")
BATCH_SIZE = typer.Option(8, "--batch-size", help="prompts per batch (local backend)")
SEED = typer.Option(0, "--seed", help="random seed (sampling, demo choice)")
QUIET = typer.Option(False, "--quiet", help="no progress bars")


def _config(method: str, *, backend, model, base_url, api_key_env, concurrency, max_retries,
            timeout, batch_size, seed, quiet, **sections: Any):
    from .config import GenerateConfig
    data = {"method": method, "seed": seed, "show_progress": not quiet,
            "backend": {"kind": backend, "model": model, "base_url": base_url,
                        "api_key_env": api_key_env, "concurrency": concurrency,
                        "max_retries": max_retries, "timeout": timeout, "batch_size": batch_size}}
    data.update({k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in sections.items()})
    return validate(GenerateConfig, data, "command line")


def _report(out: Path, counts: dict[str, Any]) -> None:
    parts = [f"{counts.get('records', 0)} records", f"{counts.get('rejected', 0)} rejected",
             f"{counts.get('requests', 0)} requests ({counts.get('cache_hits', 0)} from cache)",
             f"{counts.get('retries', 0)} retries", f"{counts.get('dead_lettered', 0)} dead-lettered"]
    if counts.get("tokens_per_second"):
        parts.append(f"{counts['tokens_per_second']:.1f} tokens/s")
    typer.echo(", ".join(parts) + f" -> {out}")
    if counts.get("dead_lettered"):
        typer.secho(f"{counts['dead_lettered']} requests failed for good: see {out}/dead_letter.jsonl; "
                    "run the same command again to retry them", fg="yellow", err=True)


def register(app: typer.Typer) -> None:
    gen = typer.Typer(no_args_is_help=True, help="Generate training data with a model.")
    app.add_typer(gen, name="generate")

    @gen.command("self-instruct")
    def self_instruct_cmd(
        seeds: Optional[Path] = typer.Option(None, "--seeds", help="seed tasks JSONL (Self-Instruct "
                                             "format); default: sftflow's own set"),
        n: int = typer.Option(50, "--n", help="target number of new instructions"),
        out: Path = OUT, backend: str = BACKEND, model: Optional[str] = MODEL, base_url: str = BASE_URL,
        api_key_env: str = API_KEY_ENV, concurrency: int = CONCURRENCY, max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT, batch_size: int = BATCH_SIZE, seed: int = SEED, quiet: bool = QUIET,
        requests_per_round: Optional[int] = typer.Option(None, "--requests-per-round"),
        max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens"),
    ):
        """Self-Instruct: bootstrap instructions from seed tasks, then instances; resumable."""
        from ..pipeline.stages.generate import run_generate
        cfg = _config("self-instruct", backend=backend, model=model, base_url=base_url,
                      api_key_env=api_key_env, concurrency=concurrency, max_retries=max_retries,
                      timeout=timeout, batch_size=batch_size, seed=seed, quiet=quiet,
                      self_instruct={"seeds": str(seeds) if seeds else None, "n": n,
                                     "requests_per_round": requests_per_round,
                                     "max_new_tokens": max_new_tokens})
        counts = run_generate(cfg, out)
        _report(out, counts)
        if counts.get("instructions", 0) < n:
            typer.secho(f"only {counts.get('instructions', 0)} of {n} new instructions passed the filters "
                        f"in {counts.get('rounds')} rounds (see rejected.jsonl)", fg="yellow", err=True)

    @gen.command("paraphrase")
    def paraphrase_cmd(
        input: Path = typer.Argument(..., help="records whose instructions to rewrite (any format)"),
        k: int = typer.Option(2, "--k", help="rewrites per instruction"),
        styles: Optional[list[str]] = typer.Option(None, "--style", help="a style (repeat); default "
                                                   "formal, casual, terse, detailed"),
        min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="embedding cosine to keep"),
        embed: Optional[str] = typer.Option(None, "--embed", help="sbert or tfidf"),
        limit: Optional[int] = typer.Option(None, "--limit", help="at most this many input records"),
        out: Path = OUT, backend: str = BACKEND, model: Optional[str] = MODEL, base_url: str = BASE_URL,
        api_key_env: str = API_KEY_ENV, concurrency: int = CONCURRENCY, max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT, batch_size: int = BATCH_SIZE, seed: int = SEED, quiet: bool = QUIET,
    ):
        """Rewrite each instruction k ways in different styles, keeping the response."""
        from ..pipeline.stages.generate import run_generate
        cfg = _config("paraphrase", backend=backend, model=model, base_url=base_url,
                      api_key_env=api_key_env, concurrency=concurrency, max_retries=max_retries,
                      timeout=timeout, batch_size=batch_size, seed=seed, quiet=quiet,
                      rewrite={"input": str(input), "k": k, "styles": styles or None, "limit": limit},
                      validation={"min_cosine": min_cosine, "embed_method": embed})
        _report(out, run_generate(cfg, out))

    @gen.command("roundtrip")
    def roundtrip_cmd(
        input: Path = typer.Argument(..., help="records whose instructions to round-trip (any format)"),
        pivot: str = typer.Option("French", "--pivot", help="pivot language"),
        min_cosine: Optional[float] = typer.Option(None, "--min-cosine", help="embedding cosine to keep"),
        embed: Optional[str] = typer.Option(None, "--embed", help="sbert or tfidf"),
        limit: Optional[int] = typer.Option(None, "--limit", help="at most this many input records"),
        out: Path = OUT, backend: str = BACKEND, model: Optional[str] = MODEL, base_url: str = BASE_URL,
        api_key_env: str = API_KEY_ENV, concurrency: int = CONCURRENCY, max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT, batch_size: int = BATCH_SIZE, seed: int = SEED, quiet: bool = QUIET,
    ):
        """Translate each instruction to a pivot language and back."""
        from ..pipeline.stages.generate import run_generate
        cfg = _config("roundtrip", backend=backend, model=model, base_url=base_url,
                      api_key_env=api_key_env, concurrency=concurrency, max_retries=max_retries,
                      timeout=timeout, batch_size=batch_size, seed=seed, quiet=quiet,
                      rewrite={"input": str(input), "pivot": pivot, "limit": limit},
                      validation={"min_cosine": min_cosine, "embed_method": embed})
        _report(out, run_generate(cfg, out))

    @gen.command("backtranslate")
    def backtranslate_cmd(
        input: Path = typer.Argument(..., help="unlabelled texts: .txt (blank-line separated) or JSONL"),
        text_field: str = typer.Option("text", "--text-field", help="JSONL field holding the text"),
        min_score: int = typer.Option(4, "--min-score", help="self-curation score to keep (1-5)"),
        limit: Optional[int] = typer.Option(None, "--limit", help="at most this many texts"),
        out: Path = OUT, backend: str = BACKEND, model: Optional[str] = MODEL, base_url: str = BASE_URL,
        api_key_env: str = API_KEY_ENV, concurrency: int = CONCURRENCY, max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT, batch_size: int = BATCH_SIZE, seed: int = SEED, quiet: bool = QUIET,
    ):
        """Instruction backtranslation (Humpback): write the instruction each text answers, then self-curate."""
        from ..pipeline.stages.generate import run_generate
        cfg = _config("backtranslate", backend=backend, model=model, base_url=base_url,
                      api_key_env=api_key_env, concurrency=concurrency, max_retries=max_retries,
                      timeout=timeout, batch_size=batch_size, seed=seed, quiet=quiet,
                      backtranslate={"input": str(input), "text_field": text_field,
                                     "min_score": min_score, "limit": limit})
        _report(out, run_generate(cfg, out))
