"""Settle, cell by cell, what the text recogniser gets wrong in an MRZ: a filler ``<`` read
as ``K`` or ``C`` (and, more rarely, the other way round); and doubt a verified document
number whose letters or digits do not look like what was read.

The recogniser reads a line as a whole and leans on its letters' neighbours: a ``<`` between
two letters comes out as ``K`` far more often than a ``<`` in a run of fillers. The name line
has no check digit to catch that, so ``ABERNATHY<<KINGSLEY`` would be read as
``ABERNATHYKKINGSLEY``. An MRZ, though, is set in one known monospaced typeface (ICAO 9303
prescribes OCR-B) at a fixed pitch, so each character sits in a cell whose place follows from
the line's ends. For every cell read as ``<``, ``K`` or ``C``, this module draws each of the
three in OCR-B at the line's size and keeps the one that matches the pixels best
(normalised cross-correlation, with a little play in position). The three shapes differ a
lot -- a chevron, a letter with a full-height stem, an open ring -- so the choice holds up
under blur, noise and JPEG that mislead the recogniser.

The line is used only when its read length is the format's (30, 36 or 44 characters after
normalising); otherwise the cells cannot be placed, and the text is returned as read.

The same walk checks a read that passed every check digit. A check digit misses two errors
that cancel, and a letter swapped for one ten places away in its table (``M`` and ``W``,
``G`` and ``6``); at the severe scan level the recogniser reads ``Z`` as ``2``, ``B`` as ``8``
and ``D`` as ``0`` often enough that a few wrong numbers still passed. So each letter and
digit of the alphanumeric fields (document number, optional data) is drawn again, as read
and as every other letter and digit, and a cell that looks clearly more like another
character than the one read makes the document unreadable (:func:`doubted_cells`).
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

import numpy as np

OCR_B_FONT = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
LINE_WIDTHS = (30, 36, 44)
SETTLED = "<KC"
# how far (share of a cell) a glyph may sit from where the line's ends place it
PLAY = 0.3
_REFERENCE_SIZE = 100
# the least agreement (correlation of column profiles) between the drawn line and the image
MIN_FIT = 0.5
# a cell whose best glyph matches at least this well moves the walk along the line
TRACK_SCORE = 0.6
ALPHANUMERIC = string.ascii_uppercase + string.digits
# a letter or digit is doubted when another one matches its cell this much better (TM_CCOEFF
# score). Measured on generated documents (80 per level, 2026-11-29): right reads never
# came above +0.06 (0 against O on severe scans); the four wrong document numbers that had
# passed every check digit at the severe level were +0.11 to +0.31.
DOUBT_MARGIN = 0.08


@functools.lru_cache(maxsize=1)
def _font_path() -> Path | None:
    return OCR_B_FONT if OCR_B_FONT.exists() else None


@functools.lru_cache(maxsize=64)
def _drawn(text: str, size: int) -> tuple[np.ndarray, float]:
    """``text`` drawn in OCR-B at ``size`` points, ink 1.0 on 0.0, from the cap line to the
    base line (one pixel more each way); and the advance of one character in pixels."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(_font_path()), size)
    _l, top, _r, bottom = font.getbbox("M")
    img = Image.new("L", (int(np.ceil(font.getlength(text))) + 1, bottom - top + 2), 0)
    ImageDraw.Draw(img).text((0, -top + 1), text, font=font, fill=255)
    return np.asarray(img, dtype=np.float32) / 255.0, float(font.getlength("M"))


@functools.lru_cache(maxsize=1)
def _reference_advance() -> float:
    from PIL import ImageFont

    return float(ImageFont.truetype(str(_font_path()), _REFERENCE_SIZE).getlength("M"))


def _size_for_advance(advance: float) -> int:
    """The point size whose characters advance ``advance`` pixels."""
    return max(round(_REFERENCE_SIZE * advance / _reference_advance()), 8)


def _ink(crop: np.ndarray) -> np.ndarray:
    """A line's crop (BGR or gray) as ink in [0, 1] over its own background: the background
    (the page with the dark strokes closed over) is taken away, so shading and tint vanish."""
    import cv2

    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    k = max(int(crop.shape[0] * 0.6) | 1, 3)
    background = cv2.morphologyEx(gray, cv2.MORPH_CLOSE,
                                  cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    ink = np.maximum(background - gray, 0.0)
    return np.clip(ink / max(float(np.percentile(ink, 99)), 1.0), 0.0, 1.0)


def _place(profile: np.ndarray, drawn: np.ndarray) -> tuple[float, int, float]:
    """(scale, offset, score) that best lay the column profile of the drawn line over the
    image's: the drawn line scaled by ``scale`` starts at column ``offset``."""
    import cv2

    row = profile.astype(np.float32)[None, :]
    dprof = drawn.mean(axis=0).astype(np.float32)
    best = (1.0, 0, -1.0)
    for scale in np.arange(0.80, 1.25, 0.005):
        width = round(dprof.size * scale)
        if width >= row.shape[1] or width < 8:
            continue
        tmpl = cv2.resize(dprof[None, :], (width, 1), interpolation=cv2.INTER_AREA)
        scores = cv2.matchTemplate(row, tmpl, cv2.TM_CCOEFF_NORMED)[0]
        at = int(np.argmax(scores))
        if scores[at] > best[2]:
            best = (float(scale), at, float(scores[at]))
    return best


def _cell_scores(crop: np.ndarray, text: str, choices) -> list[dict[str, float]] | None:
    """Per cell of ``text`` (one MRZ line as read, normalised), the match score of each glyph
    ``choices(i, ch)`` names for it (the character as read always among them); None when the
    line's length is no MRZ width, the font is missing, or the drawn line does not fit."""
    if len(text) not in LINE_WIDTHS or _font_path() is None:
        return None
    import cv2

    ink = _ink(crop)
    pad = crop.shape[0] // 3
    ink = np.pad(ink, ((pad, pad), (0, 0)))
    # the crop holds the line with about 0.8 of its height added at each side (see _ocr._crop)
    box_height = crop.shape[0] / 1.2
    advance_guess = (crop.shape[1] - 1.6 * box_height) / len(text)
    size = _size_for_advance(advance_guess)
    drawn, advance = _drawn(text, size)
    scale, offset, fit = _place(ink.mean(axis=0), drawn)
    if fit < MIN_FIT:
        return None
    cell = advance * scale
    glyphs: dict[str, np.ndarray] = {}

    def glyph(ch: str) -> np.ndarray:
        if ch not in glyphs:
            drawn_ch = cv2.resize(_drawn(ch, size)[0], None, fx=scale, fy=scale,
                                  interpolation=cv2.INTER_AREA)
            glyphs[ch] = cv2.GaussianBlur(drawn_ch, (0, 0), 1.0)
        return glyphs[ch]

    # walk the line cell by cell, following where each character is found: a page that is
    # not quite flat stretches one end of the line more than the other
    out: list[dict[str, float]] = []
    drift = 0.0
    for i, ch in enumerate(text):
        x = offset + i * cell + drift
        x0 = int(max(x - PLAY * cell, 0))
        patch = ink[:, x0:int(min(x + (1 + PLAY) * cell + 1, ink.shape[1]))]
        found = {}
        for cand in dict.fromkeys((ch, *choices(i, ch))):
            tmpl = glyph(cand)
            if tmpl.shape[0] > patch.shape[0] or tmpl.shape[1] > patch.shape[1]:
                return None
            scores = cv2.matchTemplate(patch, tmpl, cv2.TM_CCOEFF_NORMED)
            _lo, best, _lo_at, at = cv2.minMaxLoc(scores)
            found[cand] = (best, at[0])
        pick = max(found, key=lambda c: found[c][0])
        score, at = found[pick]
        if score >= TRACK_SCORE:
            drift += 0.5 * (x0 + at - x)
        out.append({c: float(s) for c, (s, _at) in found.items()})
    return out


def doubted_cells(crop: np.ndarray, text: str, positions: frozenset[int]) -> list[int] | None:
    """The positions among ``positions`` where the letter or digit of ``text`` (one verified
    MRZ line) is not what its cell of ``crop`` shows: another letter or digit drawn in OCR-B
    matches the pixels better by more than :data:`DOUBT_MARGIN`. None when the line cannot
    be placed (see :func:`settle_fillers`). Fillers and ``K`` are not judged here: no check
    digit tells them apart, and :func:`settle_fillers` has had its say on them."""
    if len(text) not in LINE_WIDTHS:
        return None
    judged = {i for i in positions
              if i < len(text) and text[i] in ALPHANUMERIC and text[i] != "K"}
    if not judged:
        return []
    cells = _cell_scores(crop, text, lambda i, _ch: ALPHANUMERIC if i in judged else ())
    if cells is None:
        return None
    return [i for i in sorted(judged)
            if max(v for c, v in cells[i].items() if c != text[i])
            > cells[i][text[i]] + DOUBT_MARGIN]


def settle_fillers(crop: np.ndarray, text: str, keep: frozenset[int] = frozenset()) -> str:
    """``text`` (one MRZ line as read, normalised) with each ``<``, ``K`` and ``C`` replaced by
    whichever of the three its cell of ``crop`` looks most like; unchanged when the line's
    length is no MRZ width, the font is missing, or the drawn line does not fit the image.

    Positions in ``keep`` stay as read: the caller passes the alphanumeric fields, where a
    ``K`` and a ``<`` weigh the same in the check digit, so a wrong choice there could never
    be caught (see :func:`~vigil.identity._mrz.check_blind_positions`), less the optional
    data's trailing fillers (:func:`~vigil.identity._mrz.optional_filler_runs`)."""
    if not any(ch in SETTLED for ch in text):
        return text
    cells = _cell_scores(crop, text, lambda _i, ch: SETTLED if ch in SETTLED else ())
    if cells is None:
        return text
    return "".join(ch if i in keep else max(found, key=found.__getitem__)
                   for i, (ch, found) in enumerate(zip(text, cells, strict=True)))
