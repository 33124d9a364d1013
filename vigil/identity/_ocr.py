"""Read text from document images with RapidOCR (PP-OCRv4 models under ONNX Runtime; they
ship in the ``rapidocr_onnxruntime`` wheel): the MRZ lines of a passport page or an ID card's
back, and the printed text of a data page.

How the MRZ is found: the text detector runs once over the page; MRZ lines are the long, thin
boxes (width at least :data:`MIN_MRZ_ASPECT` times the height) whose recognised text is
mostly MRZ characters. Each such line is cut out along its (possibly rotated) box, padded and
upscaled, and recognised on its own, which reads the long runs of ``<`` better than a
whole-page pass. When the check digits later fail, :func:`mrz_line_variants` offers a second
reading of every line (binarised, another scale) for the caller to try.

The engine is loaded once, lazily, and guarded by a lock: ONNX Runtime sessions may be shared
between threads, but RapidOCR keeps per-call state on the object.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

MIN_MRZ_ASPECT = 12.0
# (widening, blur) of each reading of an MRZ line (see _stretch); the first is the first
STRETCHES = ((1.6, 2.0), (1.3, 2.5), (2.0, 1.5))
_MRZ_CHARS = re.compile(r"[A-Z0-9<]")
_engine = None
_threads: int | None = None
_lock = threading.Lock()


def use_threads(threads: int | None) -> None:
    """Run the OCR models on ``threads`` threads (None: ONNX Runtime's default, one per core).

    With one worker process per core, one thread each is what scales: left at the default,
    every process starts a thread per core and they fight over the cores.
    """
    global _engine, _threads
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    with _lock:
        if threads != _threads:
            _threads, _engine = threads, None


def _rapidocr():
    global _engine
    with _lock:
        if _engine is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # the identity extra is optional
                raise ImportError("reading documents needs RapidOCR: "
                                  "pip install 'vigil[identity]'") from exc
            threads = {} if _threads is None else {"intra_op_num_threads": _threads,
                                                   "inter_op_num_threads": 1}
            _engine = RapidOCR(print_verbose=False, **threads)
        return _engine


@dataclass(frozen=True)
class TextLine:
    """One line of text found on an image: its text, confidence and box (4 corner points)."""

    text: str
    score: float
    box: np.ndarray  # (4, 2) pixel corners, clockwise from top-left


def _bgr(image) -> np.ndarray:
    arr = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(arr[:, :, ::-1])


def read_text(image) -> list[TextLine]:
    """Every line of text RapidOCR finds on a PIL image, top to bottom."""
    engine = _rapidocr()
    with _lock:
        result, _ = engine(_bgr(image), use_cls=False)
    lines = [TextLine(text, float(score), np.asarray(box, dtype=np.float32))
             for box, text, score in result or []]
    return sorted(lines, key=lambda line: float(line.box[:, 1].mean()))


def _detect(arr: np.ndarray) -> list[np.ndarray]:
    engine = _rapidocr()
    with _lock:
        result, _ = engine(arr, use_det=True, use_cls=False, use_rec=False)
    return [np.asarray(box, dtype=np.float32) for box in result or []]


def _crop(arr: np.ndarray, box: np.ndarray, pad_x: float = 0.8,
          pad_y: float = 0.1) -> np.ndarray:
    """The box cut out and straightened, with ``pad_x`` and ``pad_y`` of its height added
    at the sides and at top and bottom (the detector's box can shave the first letter)."""
    import cv2

    tl, tr, br, bl = (np.asarray(p, dtype=np.float64) for p in box)
    width = float(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = float(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    # grow the box in the image itself, so that the margin holds real pixels
    across = (tr - tl) / max(np.linalg.norm(tr - tl), 1e-6)
    down = (bl - tl) / max(np.linalg.norm(bl - tl), 1e-6)
    dx, dy = across * pad_x * height, down * pad_y * height
    src = np.float32([tl - dx - dy, tr + dx - dy, br + dx + dy, bl - dx + dy])
    dst_w, dst_h = int(width + 2 * pad_x * height), int(height + 2 * pad_y * height)
    dst = np.float32([[0, 0], [dst_w, 0], [dst_w, dst_h], [0, dst_h]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(arr, matrix, (dst_w, dst_h), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))


def _recognise(crops: list[np.ndarray]) -> list[tuple[str, float]]:
    engine = _rapidocr()
    out = []
    with _lock:
        for crop in crops:
            result, _ = engine(crop, use_det=False, use_cls=False, use_rec=True)
            text, score = result[0] if result else ("", 0.0)
            out.append((str(text), float(score)))
    return out


def _height(box: np.ndarray) -> float:
    return float(np.linalg.norm(box[3] - box[0]))


def _merge_rows(boxes: list[np.ndarray]) -> list[np.ndarray]:
    """Join boxes that sit side by side on one row with the same text height: the detector
    splits an MRZ line where a long run of ``<`` leaves a gap."""
    import cv2

    rows: list[list[np.ndarray]] = []
    for box in sorted(boxes, key=lambda b: float(b[:, 0].min())):
        cy, h = float(box[:, 1].mean()), _height(box)
        for row in rows:
            ref = row[-1]
            if (abs(float(ref[:, 1].mean()) - cy) < 0.5 * min(h, _height(ref))
                    and abs(h - _height(ref)) < 0.3 * max(h, _height(ref))):
                row.append(box)
                break
        else:
            rows.append([box])
    merged = []
    for row in rows:
        if len(row) == 1:
            merged.append(row[0])
            continue
        rect = cv2.minAreaRect(np.concatenate(row).astype(np.float32))
        merged.append(_order(cv2.boxPoints(rect)))
    return merged


def _order(points: np.ndarray) -> np.ndarray:
    """Four corners as top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.float32([tl, tr, br, bl])


def _is_long(box: np.ndarray) -> bool:
    tl, tr, _br, bl = box
    width = float(np.linalg.norm(tr - tl))
    height = float(np.linalg.norm(bl - tl))
    return height > 0 and width / height >= MIN_MRZ_ASPECT


def mrz_share(text: str) -> float:
    """The share of ``text`` that is MRZ characters (``A-Z``, ``0-9``, ``<``)."""
    compact = text.replace(" ", "")
    return len(_MRZ_CHARS.findall(compact)) / max(len(compact), 1)


@dataclass(frozen=True)
class MrzCandidate:
    """The MRZ lines OCR read, top to bottom, and how to read them again differently."""

    lines: tuple[str, ...]
    crops: tuple[np.ndarray, ...]


def find_mrz(image) -> MrzCandidate | None:
    """The MRZ lines on a PIL image (a passport data page or an ID card's back), or None.

    Long thin text boxes are cut out and recognised one by one; the MRZ is the last 2 or 3 of
    them whose text is mostly MRZ characters and at least 25 long.
    """
    arr = _bgr(image)
    boxes = sorted((box for box in _merge_rows(_detect(arr)) if _is_long(box)),
                   key=lambda box: float(box[:, 1].mean()))
    if not boxes:
        return None
    crops = [_crop(arr, box) for box in boxes]
    texts = _recognise([_stretch(crop, *STRETCHES[0]) for crop in crops])
    keep = [(text, crop) for (text, _score), crop in zip(texts, crops, strict=True)
            if len(text.replace(" ", "")) >= 25 and mrz_share(text) >= 0.85]
    if len(keep) < 2:
        return None
    keep = keep[-3:] if len(keep) >= 3 and _similar_lengths(keep[-3:]) else keep[-2:]
    return MrzCandidate(lines=tuple(t for t, _c in keep), crops=tuple(c for _t, c in keep))


def _similar_lengths(items: list[tuple[str, np.ndarray]]) -> bool:
    lengths = [len(t.replace(" ", "")) for t, _c in items]
    return max(lengths) <= 33 and min(lengths) >= 26


def _stretch(crop: np.ndarray, widen: float, blur: float, height: int = 48) -> np.ndarray:
    """Scale the line to ``height`` pixels, widen it ``widen`` times more, and blur it.

    Measured on generated documents (lines read exactly, before any repair): MRZ characters
    stand further apart than the text the recogniser learnt from, and widening them further
    stops it from dropping letters (mild level, 30 lines: 23 at 1.0, 27 at 1.4, 29 at 1.8,
    4 at 0.7). Sharp, thin OCR-B strokes lose letters too; a Gaussian blur of about 2 pixels
    brings them back (clean ID cards, 18 lines: 2 without blur, 10 at 1.0, 14 at 2.0, the
    rest only O read as 0 in country codes, which the MRZ repair undoes).
    """
    import cv2

    scale = height / crop.shape[0]
    out = cv2.resize(crop, None, fx=scale * widen, fy=scale, interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(out, (0, 0), blur) if blur else out


def mrz_line_variants(candidate: MrzCandidate) -> list[tuple[str, ...]]:
    """Other readings of the MRZ (each line widened differently, then also binarised), for
    when the first reading's check digits fail; one tuple of lines per reading."""
    variants = []
    for widen, blur in STRETCHES[1:]:
        crops = [_stretch(crop, widen, blur) for crop in candidate.crops]
        variants.append(tuple(text for text, _s in _recognise(crops)))
    crops = [_binarise(_stretch(crop, *STRETCHES[0])) for crop in candidate.crops]
    variants.append(tuple(text for text, _s in _recognise(crops)))
    return variants


def _binarise(crop: np.ndarray) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    gray = cv2.GaussianBlur(gray, (3, 3), 0)
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return cv2.cvtColor(binary, cv2.COLOR_GRAY2BGR)
