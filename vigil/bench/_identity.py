"""`vigil bench identity`: how well and how fast vigil verifies identities.

Four parts, each runnable alone (``--only``), written together to ``identity.json`` and
``identity.md``:

- **documents**: the MRZ read on generated passports and ID cards, per degradation level,
  before and after the check-digit repair, and how many wrong identities were accepted
  (target: none); forged variants caught (:mod:`vigil.bench._identity_documents`);
- **faces**: false accepts and false rejects at the chosen threshold on every pair of the
  shared photographs and their degraded copies (:mod:`vigil.bench._identity_faces`);
- **sessions**: whole sessions (a generated passport whose portrait is one photograph of a
  person, a selfie that is another photograph of the same person) through the real checks,
  in process: latency per session (p50 / p95), and sessions per minute with one process per
  core;
- **graph**: the identity graph's lift on ring and synthetic-identity detection on the
  simulated world (:mod:`vigil.bench._identity_graph`).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from vigil._errors import ConfigError

PARTS = ("documents", "faces", "sessions", "graph")
DEFAULT_PARTS = ("documents", "faces", "sessions")
"""The graph's lift trains six models on the medium world (about 20 minutes on 2 cores), so
it runs when asked (``--only graph``) and writes ``identity_graph_PRESET.*`` of its own."""
DEFAULT_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces"
TODAY = date(2026, 1, 15)  # the generated documents' "today"


def _person_photos(faces_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs (portrait photo, selfie photo) of the same person, for everyone with two or more
    photographs (cycling through their photographs)."""
    pairs = []
    for person in sorted(p for p in faces_dir.iterdir() if p.is_dir() and p.name[0] != "_"):
        photos = sorted(person.glob("*.jpg")) + sorted(person.glob("*.png"))
        pairs += [(photos[i], photos[(i + 1) % len(photos)]) for i in range(len(photos))
                  if len(photos) > 1]
    return pairs


def _session_inputs(faces_dir: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` sessions: a generated passport with one photograph as its portrait, and another
    photograph of the same person as the selfie."""
    from PIL import Image

    from vigil.identity import FaceModel
    from vigil.identity._docgen import generate_document

    pairs = _person_photos(faces_dir)
    if not pairs:
        raise ConfigError(f"{faces_dir}: no person with two photographs")
    model = FaceModel()
    out = []
    for i in range(n):
        portrait_path, selfie_path = pairs[i % len(pairs)]
        with Image.open(portrait_path) as photo:
            portrait = _passport_photo(photo.convert("RGB"), model)
            doc = generate_document(seed + i, kind="passport", portrait=portrait, today=TODAY)
        front, _ = doc.image_bytes("JPEG")
        out.append({"document_front": front, "selfie": selfie_path.read_bytes(),
                    "name": f"{doc.truth.given_names} {doc.truth.surname}"})
    return out


def _passport_photo(photo: Any, model: Any) -> Any:
    """A passport photograph made of a snapshot: the head and shoulders around its largest
    face (a passport's portrait is a close crop, a snapshot often a wide shot)."""
    import numpy as np

    faces = model.detect(np.asarray(photo))
    if not faces:
        return photo
    left, top, right, bottom = faces[0].box
    w, h = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2
    half_w, half_h = 1.0 * w, 1.3 * h
    box = (max(0, int(cx - half_w)), max(0, int(cy - half_h)),
           min(photo.width, int(cx + half_w)), min(photo.height, int(cy + half_h)))
    return photo.crop(box)


def _run_sessions(inputs: list[dict[str, Any]]) -> list[tuple[float, str, str | None]]:
    """Each session through the real checks: (seconds, status, error code)."""
    from vigil.identity import Claimed, DefaultChecks, SessionRequest, run_checks

    checks = DefaultChecks()
    request = SessionRequest("document", allowed_types=("passport",),
                             require_matching_selfie=True, min_age=18)
    results = []
    for item in inputs:
        files = {"document_front": item["document_front"], "selfie": item["selfie"]}
        t = time.perf_counter()
        outcome = run_checks(request, files, Claimed(name=item["name"]), checks, today=TODAY)
        results.append((time.perf_counter() - t, outcome.status,
                        outcome.error.code if outcome.error else None))
    return results


def _one_thread_each() -> None:
    """One OCR thread in each worker process: a thread per core in each would fight."""
    from vigil.identity._ocr import use_threads

    use_threads(1)


def measure_sessions(faces_dir: Path, *, sessions: int = 40, processes: int = 2, seed: int = 0,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Latency of whole sessions in one process (models loaded first, so the figure is a warm
    service's), and sessions per minute with ``processes`` processes working at once."""
    say = progress or (lambda _m: None)
    say(f"sessions: generating {sessions} passports with portraits and selfies")
    inputs = _session_inputs(faces_dir, sessions, seed)
    _run_sessions(inputs[:1])  # load the OCR and face models
    say(f"sessions: {sessions} one after another in one process")
    single = _run_sessions(inputs)
    seconds = np.array([s for s, _, _ in single])
    statuses: dict[str, int] = {}
    for _, status, code in single:
        key = status if code is None else f"{status}: {code}"
        statuses[key] = statuses.get(key, 0) + 1
    say(f"sessions: {sessions} over {processes} processes at once")
    chunks = [inputs[i::processes] for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes, initializer=_one_thread_each) as pool:
        pool.map(_run_sessions, [c[:1] for c in chunks])  # each loads its models
        t = time.perf_counter()
        pool.map(_run_sessions, chunks)
        parallel_s = time.perf_counter() - t
    return {"sessions": sessions, "outcomes": statuses,
            "latency_s": {"p50": float(np.percentile(seconds, 50)),
                          "p95": float(np.percentile(seconds, 95)),
                          "mean": float(seconds.mean())},
            "per_minute_one_process": 60.0 / float(seconds.mean()),
            "processes": processes,
            "per_minute": 60.0 * sessions / parallel_s}


def run_identity_benchmark(*, parts: Sequence[str] = DEFAULT_PARTS,
                           documents_per_level: int = 500,
                           levels: Sequence[str] | None = None,
                           faces_dir: str | Path | None = None, sessions: int = 40,
                           graph_preset: str = "medium", seed: int = 0, processes: int = 2,
                           out_dir: str | Path = "bench/results",
                           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the chosen ``parts``; write ``identity.json`` and ``identity.md`` in ``out_dir``
    (parts not run this time keep their figures from the file already there)."""
    from vigil.bench._machine import machine_info

    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(f"unknown part {unknown[0]!r}; choose among {', '.join(PARTS)}")
    faces = Path(faces_dir) if faces_dir is not None else DEFAULT_FACES
    if {"faces", "sessions"} & set(parts) and not faces.is_dir():
        raise ConfigError(f"{faces}: the face photographs are not there; pass --faces DIR "
                          "(../shared/data/faces in the project's layout)")
    out = Path(out_dir)
    path = out / "identity.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    result["benchmark"] = "identity"
    for part in parts:
        t = time.perf_counter()
        if part == "documents":
            from vigil.bench._identity_documents import measure_documents
            from vigil.identity._docgen import LEVELS

            unknown_levels = [lv for lv in levels or () if lv not in LEVELS]
            if unknown_levels:
                raise ConfigError(f"unknown level {unknown_levels[0]!r}; choose among "
                                  f"{', '.join(LEVELS)}")
            got = measure_documents(documents_per_level, list(levels or LEVELS), seed,
                                    progress, processes=processes)
            if levels and "documents" in result:  # the levels not run keep their figures
                got["levels"] = {**result["documents"].get("levels", {}), **got["levels"]}
        elif part == "faces":
            from vigil.bench._identity_faces import measure_faces

            got = measure_faces(faces, seed, progress)
        elif part == "sessions":
            got = measure_sessions(faces, sessions=sessions, processes=processes, seed=seed,
                                   progress=progress)
        else:
            from vigil.bench._identity_graph import run_identity_graph_benchmark

            # the scenarios benchmark's world and seed, so the figures line up with it
            got = run_identity_graph_benchmark(preset=graph_preset, seed=7, out_dir=out,
                                               progress=progress)
        result[part] = {**got, "seconds": time.perf_counter() - t,
                        "date": time.strftime("%Y-%m-%d"), "machine": machine_info()}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "identity.md").write_text(identity_markdown(result))
    return result


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _share(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.1f} %)" if total else "–"


def _documents_rows(d: dict[str, Any]) -> list[str]:
    rows = ["| level | documents | MRZ exact before repair | exact after repair (target) | "
            "right identity, unchecked text differs | refused | wrong identity accepted "
            "(target 0) | p50 / p95 s |", "|---|---|---|---|---|---|---|---|"]
    targets = {"clean": " (≥ 99 %)", "mild": " (≥ 97 %)"}
    for level, c in d["levels"].items():
        n = c["documents"]
        rows.append(f"| {level} | {n} | {_share(c['exact_before_repair'], n)} | "
                    f"{_share(c['exact_after_repair'], n)}{targets.get(level, '')} | "
                    f"{c['name_differs']} | {c['refused']} | {c['wrong_identity_accepted']} | "
                    f"{c['p50_seconds']:.2f} / {c['p95_seconds']:.2f} |")
    forged = ", ".join(f"{k.replace('_', ' ')} {v['caught']} of {v['documents']}"
                       for k, v in d.get("forged", {}).items())
    if forged:
        rows += ["", f"Forged documents refused: {forged}."]
    if d.get("processes", 1) > 1:
        rows += ["", f"Run as {d['processes']} processes at once (one OCR thread each): the "
                 "seconds per document are those of one busy core."]
    if d.get("note"):
        rows += ["", f"Note: {d['note']}."]
    return rows


def _faces_rows(f: dict[str, Any]) -> list[str]:
    at, lat = f["at_threshold"], f["latency"]
    rows = ["| pairs | same person | different people | false accepts | false rejects |",
            "|---|---|---|---|---|"]
    for name in ("clean", "degraded", "all"):
        r = at[name]
        rows.append(f"| {name} | {r['same']:,} | {r['different']:,} | {100 * r['far']:.2f} % | "
                    f"{100 * r['frr']:.2f} % |")
    kinds = [k for k in at if k not in ("clean", "degraded", "all")]
    worst = ", ".join(f"{k} {100 * at[k]['frr']:.1f} %" for k in kinds if at[k]["frr"])
    rows += ["", f"Threshold {f.get('threshold', '')}: the rule ({f['rule']['text']}) gives "
             f"{f['rule']['threshold']}; equal error at {f['equal_error']['threshold']}. "
             f"False rejects by degradation: {worst or 'none'}. Faces not found: "
             f"{sum(len(v) for v in f['not_found'].values())}. Latency per "
             f"image: detection p50 {lat['detect_ms']['p50']:.0f} ms / p95 "
             f"{lat['detect_ms']['p95']:.0f} ms, embedding p50 {lat['embed_ms']['p50']:.0f} ms"
             f" / p95 {lat['embed_ms']['p95']:.0f} ms ({lat['images_per_s']:.1f} images/s)."]
    return rows


def identity_markdown(result: dict[str, Any]) -> str:
    """The benchmark's tables (the parts that have been run)."""
    lines: list[str] = []
    if "documents" in result:
        lines += ["### Documents: the MRZ read", "", *_documents_rows(result["documents"]), ""]
    if "faces" in result:
        lines += ["### Faces: selfie against portrait", "", *_faces_rows(result["faces"]), ""]
    if "sessions" in result:
        s = result["sessions"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
        lines += ["### Whole sessions (document + selfie, real checks)", "",
                  "| what | value |", "|---|---|",
                  f"| sessions | {s['sessions']} ({outcomes}) |",
                  f"| latency per session, one process, p50 / p95 | "
                  f"{s['latency_s']['p50']:.2f} s / {s['latency_s']['p95']:.2f} s |",
                  f"| sessions per minute, one process | {s['per_minute_one_process']:.0f} |",
                  f"| sessions per minute, {s['processes']} processes | "
                  f"{s['per_minute']:.0f} |", ""]
    if "graph" in result:
        from vigil.bench._identity_graph import identity_graph_markdown

        lines += ["### The identity graph: ring and synthetic-identity detection", "",
                  identity_graph_markdown(result["graph"]), ""]
    machines = {p: result[p]["machine"] for p in PARTS if p in result}
    for part, m in machines.items():
        lines.append(f"{part}: {result[part]['date']}, {m.get('cores')} cores, "
                     f"{m.get('cpu')}; {result[part]['seconds']:.0f} s.")
    return "\n".join(lines).rstrip() + "\n"
