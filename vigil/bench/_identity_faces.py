"""How well the selfie check tells people apart, and how fast: the measurement behind
:data:`vigil.identity._faces.MATCH_THRESHOLD`.

On a folder of photographs, one sub-folder per person (folders starting with ``_`` are
skipped), every photograph is embedded clean and as degraded copies made in memory with a
fixed seed, each imitating a way a real upload goes wrong:

- ``blur``: Gaussian blur of 1.5% of the face's width (a shaky or unfocused phone);
- ``noise``: Gaussian noise, sigma 15 of 255 (a dim sensor);
- ``jpeg``: re-encoded at JPEG quality 15 (a messenger's compression);
- ``small``: the whole photo shrunk until the face is 64 pixels wide (a far camera);
- ``dark`` / ``bright``: brightness x0.45 / x1.7, clipped (bad exposure);
- ``tilted``: turned 15 degrees (a selfie taken with the head or phone askew);
- ``portrait``: the head cropped to a 180x230 slot, pasted on a 900x570 card, saved as JPEG
  quality 75 (a document's printed portrait);
- ``printed``: that card as if printed and photographed: softened (blur of 1 px), contrast
  x0.75, a warm colour cast, noise sigma 8, JPEG quality 60.

Pairs: every pair of clean photographs, and every clean photograph against every degraded copy
of *another* photograph (the document-like side against the selfie-like side; a photograph
against its own copy is reported apart, as ``self_distance``, since it would flatter the
curve). A pair is "same" when both photographs are in the same person's folder.

The rates: FAR (false accepts) is the share of different-person pairs closer than a
threshold, FRR (false rejects) the share of same-person pairs at or beyond it. Copies in which
no face is found are counted in ``not_found`` and left out of the pairs.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vigil._errors import DataFileError
from vigil.identity._faces import MATCH_THRESHOLD, Face, FaceModel
from vigil.identity._images import load_rgb

DEGRADATIONS = ("blur", "noise", "jpeg", "small", "dark", "bright", "tilted", "portrait",
                "printed")
THRESHOLDS = tuple(round(0.30 + 0.01 * i, 2) for i in range(61))  # 0.30 ... 0.90
MARGIN = 0.10  # the rule's margin below the closest different-person pair


def measure_faces(faces_dir: Path, seed: int = 0, progress: Callable[[str], None] | None = None,
                  *, threshold: float = MATCH_THRESHOLD, model: FaceModel | None = None,
                  degradations: tuple[str, ...] = DEGRADATIONS) -> dict[str, Any]:
    """Measure pairs, error rates, the FAR/FRR curve and latency on ``faces_dir``.

    Returns a JSON-ready dict: ``pairs`` (counts), ``at_threshold`` (FAR and FRR at
    ``threshold`` on clean pairs, on degraded pairs, and per degradation), ``curve`` (a list
    of ``[threshold, FAR, FRR]`` over all pairs), ``clean_curve``, ``equal_error`` (where FAR
    and FRR cross), ``rule`` (the threshold the stated rule gives), ``self_distance``,
    ``not_found`` and ``latency`` (detection and embedding p50/p95 in ms, images per second).
    ``degradations`` picks a subset of :data:`DEGRADATIONS` (all by default).
    """
    unknown = sorted(set(degradations) - set(DEGRADATIONS))
    if unknown:
        raise ValueError(f"unknown degradation(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(DEGRADATIONS)}")
    say = progress or (lambda _m: None)
    faces_dir = Path(faces_dir)
    people = sorted(p for p in faces_dir.iterdir() if p.is_dir() and not p.name.startswith("_")) \
        if faces_dir.is_dir() else []
    files = [(person.name, f) for person in people for f in sorted(person.iterdir())
             if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]
    if len(files) < 2:
        raise DataFileError(f"{faces_dir}: no photographs found; pass a folder with one "
                            "sub-folder of photos per person")
    model = model or FaceModel(threshold=threshold)
    detect_ms: list[float] = []
    embed_ms: list[float] = []

    def embed_largest(rgb: np.ndarray) -> tuple[Face | None, np.ndarray | None]:
        t0 = time.perf_counter()
        faces = model.detect(rgb)
        detect_ms.append(1000 * (time.perf_counter() - t0))
        if not faces:
            return None, None
        t0 = time.perf_counter()
        embedding = model.embed(rgb, faces[0])
        embed_ms.append(1000 * (time.perf_counter() - t0))
        return faces[0], embedding

    say(f"{len(files)} photographs of {len(people)} people; {len(degradations)} degraded "
        "copies each")
    started = time.perf_counter()
    clean: list[np.ndarray] = []
    owners: list[str] = []
    degraded: dict[str, list[np.ndarray | None]] = {k: [] for k in degradations}
    not_found: dict[str, list[str]] = {"clean": [], **{k: [] for k in degradations}}
    for index, (person, path) in enumerate(files):
        name = f"{person}/{path.name}"
        rgb = load_rgb(path.read_bytes())
        face, embedding = embed_largest(rgb)
        if face is None:
            not_found["clean"].append(name)
            continue
        clean.append(embedding)
        owners.append(person)
        rng = np.random.default_rng([seed, index])
        for kind in degradations:
            _, copy_embedding = embed_largest(degrade(rgb, face, kind, rng))
            degraded[kind].append(copy_embedding)
            if copy_embedding is None:
                not_found[kind].append(name)
        say(f"  {name}: face {face.width} px")
    elapsed = time.perf_counter() - started

    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b))

    clean_pairs = [(distance(clean[i], clean[j]), owners[i] == owners[j])
                   for i, j in itertools.combinations(range(len(clean)), 2)]
    kind_pairs = {
        kind: [(distance(clean[i], copies[j]), owners[i] == owners[j])
               for i in range(len(clean)) for j in range(len(clean))
               if i != j and copies[j] is not None]
        for kind, copies in degraded.items()
    }
    all_pairs = clean_pairs + [p for pairs in kind_pairs.values() for p in pairs]
    curve = [[t, *_rates(all_pairs, t)] for t in THRESHOLDS]
    different = [d for d, same in all_pairs if not same]
    rule = float(np.floor((min(different) - MARGIN) * 100) / 100) if different else None
    result = {
        "machine": _machine(),
        "seed": seed,
        "faces_dir": str(faces_dir),
        "photographs": len(files),
        "people": len(people),
        "threshold": threshold,
        "pairs": {
            "clean": _counts(clean_pairs),
            **{kind: _counts(pairs) for kind, pairs in kind_pairs.items()},
            "all": _counts(all_pairs),
        },
        "distances": {
            "clean": _ranges(clean_pairs),
            "all": _ranges(all_pairs),
        },
        "at_threshold": {
            "clean": _rates_dict(clean_pairs, threshold),
            "degraded": _rates_dict([p for pairs in kind_pairs.values() for p in pairs],
                                    threshold),
            **{kind: _rates_dict(pairs, threshold) for kind, pairs in kind_pairs.items()},
            "all": _rates_dict(all_pairs, threshold),
        },
        "curve": curve,
        "clean_curve": [[t, *_rates(clean_pairs, t)] for t in THRESHOLDS],
        "equal_error": _equal_error(curve),
        "rule": {
            "text": f"smallest different-person distance over all pairs, less {MARGIN}, "
                    "rounded down to 0.01",
            "smallest_different": min(different) if different else None,
            "threshold": rule,
        },
        "self_distance": {
            kind: _summary([distance(clean[i], e) for i, e in enumerate(copies)
                            if e is not None])
            for kind, copies in degraded.items()
        },
        "not_found": not_found,
        "latency": {
            "detect_ms": _percentiles(detect_ms),
            "embed_ms": _percentiles(embed_ms),
            "images": len(detect_ms),
            "images_per_s": round(len(detect_ms) / elapsed, 2),
        },
    }
    at = result["at_threshold"]
    say(f"threshold {threshold}: clean FAR {at['clean']['far']:.2%} FRR "
        f"{at['clean']['frr']:.2%}; degraded FAR {at['degraded']['far']:.2%} FRR "
        f"{at['degraded']['frr']:.2%}; rule gives {rule}")
    return result


def degrade(rgb: np.ndarray, face: Face, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``rgb`` spoiled in one of the :data:`DEGRADATIONS` ways (deterministic given
    ``rng``); ``face`` scales the blur, the shrink and the portrait crop."""
    from PIL import Image, ImageEnhance, ImageFilter

    img = Image.fromarray(rgb)
    if kind == "blur":
        return np.asarray(img.filter(ImageFilter.GaussianBlur(max(1.0, 0.015 * face.width))))
    if kind == "noise":
        noisy = rgb.astype(np.float32) + rng.normal(0.0, 15.0, rgb.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        return _jpeg(img, 15)
    if kind == "small":
        scale = min(1.0, 64 / face.width)
        size = (max(16, round(img.width * scale)), max(16, round(img.height * scale)))
        return np.asarray(img.resize(size, Image.Resampling.LANCZOS))
    if kind in ("dark", "bright"):
        return np.asarray(ImageEnhance.Brightness(img).enhance(0.45 if kind == "dark" else 1.7))
    if kind == "tilted":
        return np.asarray(img.rotate(15, resample=Image.Resampling.BICUBIC, expand=True,
                                     fillcolor=(128, 128, 128)))
    if kind == "portrait":
        return _jpeg(Image.fromarray(portrait_card(rgb, face, rng)), 75)
    if kind == "printed":
        card = Image.fromarray(portrait_card(rgb, face, rng)).filter(ImageFilter.GaussianBlur(1))
        card = ImageEnhance.Contrast(card).enhance(0.75)
        tinted = np.asarray(card).astype(np.float32) * np.array([1.0, 0.95, 0.85])
        noisy = tinted + rng.normal(0.0, 8.0, tinted.shape)
        return _jpeg(Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)), 60)
    raise ValueError(f"unknown degradation {kind!r}; one of {', '.join(DEGRADATIONS)}")


def portrait_card(rgb: np.ndarray, face: Face, rng: np.random.Generator,
                  slot: tuple[int, int] = (180, 230)) -> np.ndarray:
    """The head in ``rgb`` cropped to a ``slot`` (width, height) portrait on a 900x570 card
    with a pale tinted background and grey bars for printed text."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = face.box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    crop_w = 1.8 * face.width  # the slot shows the head and shoulders, as a passport photo
    crop_h = crop_w * slot[1] / slot[0]
    box = (round(cx - crop_w / 2), round(cy - 0.45 * crop_h),
           round(cx + crop_w / 2), round(cy + 0.55 * crop_h))
    head = Image.fromarray(rgb).crop(box).resize(slot, Image.Resampling.LANCZOS)
    tint = tuple(int(v) for v in rng.integers(200, 245, size=3))
    card = Image.new("RGB", (900, 570), tint)
    card.paste(head, (50, 170))
    draw = ImageDraw.Draw(card)
    draw.rectangle((40, 40, 860, 110), fill=(90, 90, 140))
    for row in range(6):
        width = int(rng.integers(200, 560))
        draw.rectangle((280, 180 + 50 * row, 280 + width, 200 + 50 * row), fill=(70, 70, 70))
    return np.asarray(card)


def _machine() -> dict[str, Any]:
    # what the figures depend on; bench._machine.machine_info would import vigil.models (and
    # XGBoost, DuckDB, ...) only to report their versions, which do not touch faces
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):  # not Linux: keep the fallback
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.lower().startswith("model name"))
    versions = {"python": platform.python_version()}
    for name in ("dlib-bin", "dlib", "numpy", "pillow", "opencv-python"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "cpu": cpu, "libraries": versions}


def _jpeg(img, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _rates(pairs: list[tuple[float, bool]], threshold: float) -> tuple[float, float]:
    same = [d for d, s in pairs if s]
    different = [d for d, s in pairs if not s]
    far = sum(d < threshold for d in different) / len(different) if different else 0.0
    frr = sum(d >= threshold for d in same) / len(same) if same else 0.0
    return round(far, 5), round(frr, 5)


def _rates_dict(pairs: list[tuple[float, bool]], threshold: float) -> dict[str, float]:
    far, frr = _rates(pairs, threshold)
    return {"far": far, "frr": frr, **_counts(pairs)}


def _counts(pairs: list[tuple[float, bool]]) -> dict[str, int]:
    same = sum(s for _, s in pairs)
    return {"same": same, "different": len(pairs) - same}


def _ranges(pairs: list[tuple[float, bool]]) -> dict[str, dict[str, float] | None]:
    return {"same": _summary([d for d, s in pairs if s]),
            "different": _summary([d for d, s in pairs if not s])}


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": round(min(values), 3), "median": round(float(np.median(values)), 3),
            "max": round(max(values), 3)}


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(float(np.percentile(values, 50)), 1),
            "p95": round(float(np.percentile(values, 95)), 1)}


def _equal_error(curve: list[list[float]]) -> dict[str, float]:
    # the curve point where |FAR - FRR| is least: FAR rises and FRR falls with the threshold
    t, far, frr = min(curve, key=lambda point: (abs(point[1] - point[2]), point[0]))
    return {"threshold": t, "far": far, "frr": frr}
