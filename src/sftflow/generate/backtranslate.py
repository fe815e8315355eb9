"""Backtranslation: new instructions for answers we already trust.

- ``paraphrase``: rewrite each instruction k ways (formal, casual, terse, detailed,
  or styles the user names) and keep the response;
- ``roundtrip``: translate the instruction to a pivot language and back;
- ``backtranslate``: instruction backtranslation (Humpback, Li et al. 2023): given
  unlabelled texts used as responses, the model writes the instruction each one
  answers; then self-curation: the model rates each (instruction, response) pair 1-5
  with a rubric and pairs below ``min_score`` are dropped.

Rewrites are validated against their source (``validation.py``); everything dropped
goes to ``rejected.jsonl`` with the step and the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..backends import GenParams
from ..io import Rejected, read_examples
from ..schema import Example, RecordError
from .config import GenerateConfig
from .prompting import prompt_id, render
from .session import Session, build_backend, write_outputs
from .validation import clean_rewrite, validate_rewrites

STYLE_HINTS = {
    "formal": "formal and polite, as in a professional email",
    "casual": "casual and conversational, as a user would type it in a chat",
    "terse": "as short as possible while keeping every detail",
    "detailed": "more detailed and explicit about what is wanted, without adding new requirements",
}


def replace_prompt(ex: Example, new_prompt: str) -> list[dict[str, str]]:
    """The conversation with its last user turn (the one the final answer replies to) replaced."""
    msgs = [dict(m) for m in ex.messages]
    for i in range(ex.last_assistant - 1, -1, -1):
        if msgs[i]["role"] == "user":
            msgs[i]["content"] = new_prompt
            return msgs
    raise ValueError(f"record {ex.id} has no user turn to rewrite")


def _load_records(cfg: GenerateConfig, examples: list[Example] | None) -> tuple[list[Example], str | None]:
    if examples is not None:
        return list(examples), None
    rw = cfg.rewrite
    if not rw.input:
        raise RecordError("no input: give the records to rewrite (INPUT or rewrite.input)")
    exs = read_examples([rw.input], rw.format).examples
    return exs, rw.input


def _provenance(session: Session, step: str, name: str, params: GenParams, comp) -> dict[str, Any]:
    return {"step": step, "prompt_id": prompt_id(name), "backend": session.raw.name,
            "model": session.raw.model, "params": params.to_dict(),
            "finish_reason": comp.finish_reason}


def _finish_rewrites(session, cfg, items, rejected, records, method) -> None:
    """items: (source example, source prompt, rewrite text, extra metadata). Validate and sort."""
    verdicts = validate_rewrites([(src, rw) for _, src, rw, _ in items], cfg.validation)
    for (ex, src, rw, extra), v in zip(items, verdicts):
        meta = {"source": method, "source_id": ex.id, "source_prompt": src, **extra,
                "validation": v.measures}
        new = Example(messages=replace_prompt(ex, rw) if rw.strip() else ex.messages, metadata=meta)
        if v.ok:
            records.append(new)
        else:
            rejected.append(Rejected(record=new.to_dict(), step=v.step, reason=v.reason, value=v.value))


def run_paraphrase(cfg: GenerateConfig, out_dir: str | Path, *, backend=None,
                   examples: list[Example] | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir)
    rw = cfg.rewrite
    if rw.k > len(rw.styles):
        raise ValueError(f"k={rw.k} rewrites need at least {rw.k} styles; got {rw.styles}")
    exs, src_path = _load_records(cfg, examples)
    exs = exs[: rw.limit] if rw.limit else exs
    backend = backend or build_backend(cfg.backend, out_dir)
    params = GenParams(max_new_tokens=rw.max_new_tokens, temperature=rw.temperature, seed=cfg.seed)
    rejected: list[Rejected] = []
    records: list[Example] = []
    with Session(out_dir, backend, show_progress=cfg.show_progress) as session:
        jobs, reqs = [], []
        for ex in exs:
            for style in rw.styles[: rw.k]:
                jobs.append((ex, style))
                prompt = render("paraphrase", style=style, style_hint=STYLE_HINTS.get(style, style),
                                instruction=ex.prompt)
                reqs.append([{"role": "user", "content": prompt}])
        comps = session.complete(reqs, params, "paraphrasing")
        items = []
        for (ex, style), c in zip(jobs, comps):
            prov = _provenance(session, "paraphrase", "paraphrase", params, c)
            if c.finish_reason == "error":
                rejected.append(Rejected(record=ex.to_dict(), step="request",
                                         reason=f"request failed: {c.error}", value=style))
                continue
            items.append((ex, ex.prompt, clean_rewrite(c.text), {"style": style, "provenance": prov}))
        _finish_rewrites(session, cfg, items, rejected, records, "paraphrase")
        return write_outputs(session, method="paraphrase", cfg=cfg, records=records, rejected=rejected,
                             inputs=[src_path], extra_counts={"inputs": len(exs)})


def run_roundtrip(cfg: GenerateConfig, out_dir: str | Path, *, backend=None,
                  examples: list[Example] | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir)
    rw = cfg.rewrite
    exs, src_path = _load_records(cfg, examples)
    exs = exs[: rw.limit] if rw.limit else exs
    backend = backend or build_backend(cfg.backend, out_dir)
    # Low temperature: a translation should be faithful, not creative.
    params = GenParams(max_new_tokens=rw.max_new_tokens, temperature=0.0, seed=cfg.seed)
    rejected: list[Rejected] = []
    records: list[Example] = []
    with Session(out_dir, backend, show_progress=cfg.show_progress) as session:
        fwd = session.complete(
            [[{"role": "user", "content": render("translate", source="English", target=rw.pivot,
                                                  text=ex.prompt)}] for ex in exs],
            params, f"English -> {rw.pivot}")
        back_jobs = []
        for ex, c in zip(exs, fwd):
            pivot_text = clean_rewrite(c.text)
            if c.finish_reason == "error" or not pivot_text:
                rejected.append(Rejected(record=ex.to_dict(), step="request" if c.error else "roundtrip:forward",
                                         reason=f"request failed: {c.error}" if c.error else "empty translation",
                                         value=rw.pivot))
                continue
            back_jobs.append((ex, pivot_text, c))
        back = session.complete(
            [[{"role": "user", "content": render("translate", source=rw.pivot, target="English",
                                                  text=p)}] for _, p, _ in back_jobs],
            params, f"{rw.pivot} -> English")
        items = []
        for (ex, pivot_text, c1), c2 in zip(back_jobs, back):
            if c2.finish_reason == "error":
                rejected.append(Rejected(record=ex.to_dict(), step="request",
                                         reason=f"request failed: {c2.error}", value=rw.pivot))
                continue
            prov = {"forward": _provenance(session, "roundtrip", "translate", params, c1),
                    "back": _provenance(session, "roundtrip", "translate", params, c2)}
            items.append((ex, ex.prompt, clean_rewrite(c2.text),
                          {"pivot": rw.pivot, "pivot_text": pivot_text, "provenance": prov}))
        _finish_rewrites(session, cfg, items, rejected, records, "roundtrip")
        return write_outputs(session, method="roundtrip", cfg=cfg, records=records, rejected=rejected,
                             inputs=[src_path], extra_counts={"inputs": len(exs)})


# --------------------------------------------------------------------------- Humpback

def read_unlabelled(path: str | Path, text_field: str = "text") -> list[str]:
    """Texts to use as responses: .txt (blank-line separated) or JSONL/JSON records.

    In JSON(L), each record's ``text_field`` is used; records in a chat format give
    their final assistant turn.
    """
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file", path=str(path))
    if path.suffix in (".txt", ".md"):
        return [p.strip() for p in re.split(r"\n\s*\n", path.read_text("utf-8")) if p.strip()]
    from ..io import detect_format, iter_jsonl, record_to_example
    texts = []
    for line_no, rec in iter_jsonl(path):
        if isinstance(rec, dict) and text_field in rec:
            if not isinstance(rec[text_field], str):
                raise RecordError(f"expected a string, got {type(rec[text_field]).__name__}",
                                  path=str(path), line=line_no, field=text_field)
            texts.append(rec[text_field])
            continue
        try:
            texts.append(record_to_example(rec, detect_format(rec)).response)
        except RecordError as e:
            raise RecordError(f"no '{text_field}' field and not a chat record ({e.reason})",
                              path=str(path), line=line_no, field=text_field) from None
    return texts


def parse_score(text: str) -> int | None:
    m = re.search(r"score\s*[:=]?\s*([1-5])\b", text, flags=re.IGNORECASE)
    if m is None:
        m = re.match(r"\s*([1-5])\b", text)
    return int(m.group(1)) if m else None


def run_backtranslate(cfg: GenerateConfig, out_dir: str | Path, *, backend=None,
                      texts: list[str] | None = None) -> dict[str, Any]:
    out_dir = Path(out_dir)
    bt = cfg.backtranslate
    src_path = None
    if texts is None:
        if not bt.input:
            raise RecordError("no input: give the unlabelled texts (INPUT or backtranslate.input)")
        texts, src_path = read_unlabelled(bt.input, bt.text_field), bt.input
    texts = [t for t in texts if t.strip()]
    texts = texts[: bt.limit] if bt.limit else texts
    backend = backend or build_backend(cfg.backend, out_dir)
    gen_params = GenParams(max_new_tokens=bt.max_new_tokens, temperature=bt.temperature, seed=cfg.seed)
    rate_params = GenParams(max_new_tokens=8, temperature=0.0, seed=cfg.seed)
    rejected: list[Rejected] = []
    records: list[Example] = []

    def as_record(inst: str, text: str, meta: dict) -> dict:
        return {"messages": [{"role": "user", "content": inst}, {"role": "assistant", "content": text}],
                "metadata": meta}

    with Session(out_dir, backend, show_progress=cfg.show_progress) as session:
        comps = session.complete(
            [[{"role": "user", "content": render("backtranslate_instruction", response=t)}] for t in texts],
            gen_params, "instructions for texts")
        pairs = []
        for t, c in zip(texts, comps):
            prov = {"backtranslation": _provenance(session, "backtranslate", "backtranslate_instruction",
                                                   gen_params, c)}
            inst = clean_rewrite(c.text)
            if c.finish_reason == "error" or not inst:
                rejected.append(Rejected(record=as_record(inst, t, {"source": "backtranslate", "provenance": prov}),
                                         step="request" if c.error else "backtranslate:empty",
                                         reason=f"request failed: {c.error}" if c.error else "empty instruction"))
                continue
            pairs.append((inst, t, prov))
        rates = session.complete(
            [[{"role": "user", "content": render("curate_rubric", instruction=i, response=t)}]
             for i, t, _ in pairs], rate_params, "self-curation")
        for (inst, t, prov), c in zip(pairs, rates):
            prov["curation"] = _provenance(session, "curate", "curate_rubric", rate_params, c)
            score = parse_score(c.text) if c.finish_reason != "error" else None
            meta = {"source": "backtranslate", "curation_score": score,
                    "curation_answer": c.text.strip()[:80], "provenance": prov}
            rec = as_record(inst, t, meta)
            if c.finish_reason == "error":
                rejected.append(Rejected(record=rec, step="request", reason=f"request failed: {c.error}"))
            elif score is None:
                # never a default score: an unreadable rating is a rejection with the raw answer
                rejected.append(Rejected(record=rec, step="curate:unparsed",
                                         reason="no 1-5 score in the rating", value=c.text.strip()[:80]))
            elif score < bt.min_score:
                rejected.append(Rejected(record=rec, step="curate:score",
                                         reason=f"score {score} < {bt.min_score}", value=score))
            else:
                records.append(Example(messages=rec["messages"], metadata=meta))
        return write_outputs(session, method="backtranslate", cfg=cfg, records=records, rejected=rejected,
                             inputs=[src_path], extra_counts={"inputs": len(texts)})


RUNNERS = {"paraphrase": run_paraphrase, "roundtrip": run_roundtrip, "backtranslate": run_backtranslate}
