"""How well the document check reads MRZs: generated passports and ID cards at each
degradation level, read by RapidOCR, repaired, and compared with what they encode.

Per level: documents; ``exact_before_repair`` (the OCR lines equal the printed MRZ);
``exact_after_repair`` (the verified lines equal it); ``refused`` (``document_mrz_unreadable``,
or a state code that is no ICAO code, which the document check refuses too);
``wrong_identity_accepted`` (verified, but a field that identifies -- number, dates, states,
sex -- differs from the truth: the number that must stay 0; the states have no check digit);
``name_differs`` (the right identity, but text no check digit covers read differently: the
name line, or a filler of the optional data read as ``K``, which weighs the same);
p50/p95 seconds per document.
Forged variants (``wrong_check_digit``, ``altered_date``) count as caught when refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date

import numpy as np

from vigil.identity._docgen import generate_document
from vigil.identity._document_check import read_document_mrz
from vigil.identity._mrz import ICAO_CODES, _normalise

TODAY = date(2026, 1, 15)


def _identity(fields) -> tuple:
    return (fields.document_number, fields.birth_date, fields.expiry_date,
            fields.issuing_country, fields.nationality, fields.sex)


def _measure_one(doc) -> tuple[str, bool, float, tuple[str, ...]]:
    """(outcome, exact before repair, seconds, lines first read) for one document."""
    image = doc.back if doc.back is not None else doc.front
    start = time.perf_counter()
    read, first = read_document_mrz(image, today=TODAY)
    seconds = time.perf_counter() - start
    before = tuple(_normalise(line) for line in first) == doc.mrz_lines
    # the document check refuses a code that is no ICAO code, as it would here
    if read is None or not {read.fields.issuing_country, read.fields.nationality} <= ICAO_CODES:
        return "refused", before, seconds, first
    if _identity(read.fields) != _identity(doc.truth.fields):
        return "wrong", before, seconds, first
    outcome = "exact" if read.lines == doc.mrz_lines else "name_differs"
    return outcome, before, seconds, first


def _measure_chunk(job: tuple[str, int, str | None, Sequence[int]]) -> list[tuple]:
    """Documents ``indices`` of one level (or one forged variant): for each, (index, kind,
    outcome, exact before repair, seconds, lines first read, truth lines)."""
    level, seed, forgery, indices = job
    out = []
    for i in indices:
        kind = "passport" if i % 2 == 0 else "id_card"
        if forgery is None:
            doc = generate_document(seed * 1_000_003 + i, kind=kind, level=level, today=TODAY)
        else:
            doc = generate_document(seed * 1_000_003 + 500_000 + i, kind=kind,
                                    forgery=forgery, today=TODAY)
        outcome, before, took, first = _measure_one(doc)
        out.append((i, kind, outcome, before, took, list(first), list(doc.mrz_lines)))
    return out


def _one_thread_each() -> None:
    from vigil.identity._ocr import use_threads

    use_threads(1)


def _run(jobs: list, processes: int, progress: Callable[[str], None] | None,
         label: str, total: int) -> list[tuple]:
    """Every job's documents, in index order; over ``processes`` worker processes when more
    than one (each with one OCR thread), with progress every tenth of the way."""
    done: list[tuple] = []
    step = max(total // 10, 1)

    def report(chunk: list[tuple]) -> None:
        before = len(done) // step
        done.extend(chunk)
        if progress and len(done) // step > before:
            progress(f"{label}: {len(done)}/{total} documents")

    if processes <= 1:
        for job in jobs:
            report(_measure_chunk(job))
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(processes, initializer=_one_thread_each) as pool:
            for chunk in pool.imap_unordered(_measure_chunk, jobs):
                report(chunk)
    return sorted(done)


def _jobs(level: str, seed: int, forgery: str | None, n: int, size: int = 10) -> list:
    return [(level, seed, forgery, range(i, min(i + size, n))) for i in range(0, n, size)]


def measure_documents(n_per_level: int, levels: Sequence[str], seed: int,
                      progress: Callable[[str], None] | None = None,
                      n_forged: int | None = None, processes: int = 1) -> dict:
    """Measure MRZ reading on ``n_per_level`` documents per level (half passports, half ID
    cards), and forged variants (``n_forged`` each, default ``n_per_level // 5``, clean);
    over ``processes`` worker processes (one OCR thread each) when more than one.

    Returns ``{"levels": {level: {...}}, "forged": {variant: {...}}, "examples": [...]}``
    (see the module docstring for the counts; ``examples`` are every wrong identity and up
    to 20 other documents not read exactly: the lines as first read and the truth, all
    made-up data).
    """
    out: dict = {"levels": {}, "forged": {}, "examples": [], "today": TODAY.isoformat(),
                 "seed": seed, "processes": processes}
    for level in levels:
        counts = dict(documents=0, exact_before_repair=0, exact_after_repair=0, refused=0,
                      wrong_identity_accepted=0, name_differs=0)
        seconds = []
        results = _run(_jobs(level, seed, None, n_per_level), processes, progress, level,
                       n_per_level)
        for _i, kind, outcome, before, took, first, truth in results:
            if outcome == "wrong" or (outcome != "exact" and len(out["examples"]) < 20):
                out["examples"].append({"level": level, "kind": kind, "outcome": outcome,
                                        "read": first, "truth": truth})
            counts["documents"] += 1
            counts["exact_before_repair"] += before
            counts["exact_after_repair"] += outcome == "exact"
            counts["refused"] += outcome == "refused"
            counts["wrong_identity_accepted"] += outcome == "wrong"
            counts["name_differs"] += outcome == "name_differs"
            seconds.append(took)
        counts["p50_seconds"] = float(np.percentile(seconds, 50)) if seconds else 0.0
        counts["p95_seconds"] = float(np.percentile(seconds, 95)) if seconds else 0.0
        out["levels"][level] = counts
    n_forged = n_per_level // 5 if n_forged is None else n_forged
    for variant in ("wrong_check_digit", "altered_date"):
        results = _run(_jobs("clean", seed, variant, n_forged), processes, None, variant,
                       n_forged)
        caught = sum(outcome == "refused" for _i, _k, outcome, *_rest in results)
        out["forged"][variant] = {"documents": n_forged, "caught": caught}
        if progress:
            progress(f"forged {variant}: {caught}/{n_forged} caught")
    return out
