"""Settling fillers against the pixels: an MRZ line drawn in OCR-B, read with its ``<``, ``K``
and ``C`` mixed up, comes back as drawn; a line that cannot be placed comes back as read."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.identity_support import require_modules, require_ocr_b_font
from vigil.identity import _mrz_glyphs
from vigil.identity._mrz_glyphs import SETTLED, settle_fillers


@pytest.fixture(autouse=True)
def _needs_font():
    require_ocr_b_font()
    require_modules("cv2")


def _line_image(text: str, *, size: int = 30, blur: float = 0.0, noise: float = 0.0,
                jpeg: int | None = None, seed: int = 0) -> np.ndarray:
    """``text`` drawn in OCR-B and cut out the way the OCR step cuts an MRZ line (a margin of
    0.8 of the line's height at each side, 0.1 above and below), as BGR."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.truetype(str(_mrz_glyphs.OCR_B_FONT), size)
    _l, top, _r, bottom = font.getbbox(text)
    height = bottom - top
    pad_x, pad_y = int(0.8 * height), max(int(0.1 * height), 1)
    img = Image.new("RGB", (int(font.getlength(text)) + 2 * pad_x, height + 2 * pad_y),
                    (235, 232, 225))
    ImageDraw.Draw(img).text((pad_x, pad_y - top), text, font=font, fill=(20, 20, 30))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, dtype=np.float32)
    if noise:
        arr = arr + np.random.default_rng(seed).normal(0, noise, arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if jpeg:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=jpeg)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.ascontiguousarray(np.asarray(img)[:, :, ::-1])


SPECIMEN = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"


def test_fillers_read_as_letters_are_settled():
    crop = _line_image("P<CANABERNATHY<KINGSLEY<<MIKAEL<<<<<<<<<<<<<")
    read = "PKCANABERNATHYKKINGSLEYK<MIKAELKKK<<<<<<<<<C"
    assert settle_fillers(crop, read) == "P<CANABERNATHY<KINGSLEY<<MIKAEL<<<<<<<<<<<<<"


def test_real_letters_read_as_fillers_are_settled():
    truth = "P<UTOKOCK<<CLARK<<<<<<<<<<<<<<<<<<<<<<<<<<<<"
    read = truth.replace("K", "<").replace("C", "<")
    assert len(read) == 44 and read.startswith("P<UTO<O<<<<<LAR<")
    assert settle_fillers(_line_image(truth), read) == truth


def test_other_characters_are_left_as_read():
    """Only ``<``, ``K`` and ``C`` are settled: an O read as 0 stays for the check digits."""
    crop = _line_image(SPECIMEN)
    read = "PKUT0ERIKSS0N<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
    assert settle_fillers(crop, read) == "P<UT0ERIKSS0N<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"


def test_unplaceable_lines_come_back_as_read():
    crop = _line_image(SPECIMEN)
    short = SPECIMEN[:40]  # no MRZ width: the cells cannot be placed
    assert settle_fillers(crop, short) == short
    blank = np.full_like(crop, 230)  # nothing drawn: nothing to lay the line over
    assert settle_fillers(blank, SPECIMEN.replace("<", "K")) == SPECIMEN.replace("<", "K")
    other = _line_image("HELLO")  # far too short an image for 44 characters
    assert settle_fillers(other, SPECIMEN) == SPECIMEN


def test_without_the_font_nothing_changes(monkeypatch):
    monkeypatch.setattr(_mrz_glyphs, "_font_path", lambda: None)
    read = "PKUTOERIKSSONKKANNA<MARIA<<<<<<<<<<<<<<<<<<<"
    assert settle_fillers(_line_image(SPECIMEN), read) == read


_NAME = st.text(alphabet="ABCKLMNORSTK", min_size=2, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(surname=_NAME, given_names=st.lists(_NAME, min_size=0, max_size=3),
       width=st.sampled_from([30, 36, 44]), data=st.data(),
       size=st.integers(22, 40), blur=st.floats(0.0, 1.2), noise=st.floats(0.0, 12.0),
       jpeg=st.sampled_from([None, 85, 60]))
def test_any_mix_up_of_the_three_is_undone(surname, given_names, width, data, size, blur,
                                           noise, jpeg):
    """Whatever ``<``/``K``/``C`` a line is read with, the cells say which each one is, on a
    line drawn at any size with blur, noise and JPEG of a mild scan."""
    from vigil.identity._mrz import mrz_name

    truth = mrz_name(surname, " ".join(given_names), width)
    crop = _line_image(truth, size=size, blur=blur, noise=noise, jpeg=jpeg, seed=size)
    positions = [i for i, ch in enumerate(truth) if ch in SETTLED]
    flips = data.draw(st.lists(st.sampled_from(positions), unique=True,
                               max_size=len(positions)))
    read = list(truth)
    for i in flips:
        read[i] = data.draw(st.sampled_from([c for c in SETTLED if c != truth[i]]))
    assert settle_fillers(crop, "".join(read)) == truth


def test_a_whole_generated_passport_is_settled():
    """The MRZ of a generated passport, cut out by the OCR step, with every filler read as K."""
    require_modules("rapidocr_onnxruntime")
    from datetime import date

    from vigil.identity._docgen import generate_document
    from vigil.identity._ocr import find_mrz

    doc = generate_document(11, kind="passport", level="mild", today=date(2026, 1, 15))
    candidate = find_mrz(doc.front)
    assert candidate is not None
    for crop, truth in zip(candidate.crops, doc.mrz_lines, strict=True):
        assert settle_fillers(crop, truth.replace("<", "K")) == truth


def test_positions_kept_stay_as_read():
    truth = "P<CANABERNATHY<KINGSLEY<<MIKAEL<<<<<<<<<<<<<"
    read = "PKCANABERNATHYKKINGSLEY<<MIKAEL<<<<<<<<<<<<<"
    assert settle_fillers(_line_image(truth), read, frozenset({1, 14})) == read
    assert settle_fillers(_line_image(truth), read, frozenset({1})) == "PK" + truth[2:]


# TD3 line 2 with its document number (0-8) and optional data (28-41): the blind positions
_LINE2 = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
_ALNUM = frozenset(range(9)) | frozenset(range(28, 42))
# pairs a check digit cannot tell apart (their values differ by 10), and the recogniser's
# usual digit-for-letter confusions
_SWAPS = {"M": "W", "W": "M", "G": "6", "6": "G", "L": "1", "1": "L", "Z": "2", "2": "Z",
          "B": "8", "8": "B", "D": "0", "0": "D", "E": "F", "C": "G", "Y": "V"}


def test_a_verified_line_that_looks_as_read_is_not_doubted():
    crop = _line_image(_LINE2)
    assert _mrz_glyphs.doubted_cells(crop, _LINE2, _ALNUM) == []


def test_a_character_swapped_for_a_look_alike_is_doubted():
    """``W`` read as ``M`` weighs the same in a check digit; the pixels still say ``W``."""
    truth = "WH67041506ZAF9701171F3004216<<<<<<<<<<<<<<<8"
    read = "M" + truth[1:]
    assert _mrz_glyphs.doubted_cells(_line_image(truth), read, _ALNUM) == [0]


def test_cells_that_cannot_be_placed_are_not_judged():
    assert _mrz_glyphs.doubted_cells(_line_image(_LINE2), _LINE2[:40], _ALNUM) is None
    assert _mrz_glyphs.doubted_cells(_line_image(_LINE2), _LINE2, frozenset()) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(number=st.text(alphabet="ABCDEFGHJLMNPRTUVWXYZ0123456789", min_size=9, max_size=9),
       data=st.data(), size=st.integers(22, 40), blur=st.floats(0.0, 1.0),
       noise=st.floats(0.0, 10.0), jpeg=st.sampled_from([None, 85, 60]))
def test_only_the_changed_cells_are_doubted(number, data, size, blur, noise, jpeg):
    """On a mild scan of any document number, the line as drawn is never doubted, and a
    look-alike swapped into it is, at its own place and nowhere else."""
    truth = number + _LINE2[9:]
    crop = _line_image(truth, size=size, blur=blur, noise=noise, jpeg=jpeg, seed=size)
    assert _mrz_glyphs.doubted_cells(crop, truth, _ALNUM) == []
    swappable = [i for i, ch in enumerate(number) if ch in _SWAPS]
    if swappable:
        i = data.draw(st.sampled_from(swappable))
        read = truth[:i] + _SWAPS[truth[i]] + truth[i + 1:]
        assert _mrz_glyphs.doubted_cells(crop, read, _ALNUM) == [i]


def test_fillers_after_the_optional_data_are_settled_and_the_data_is_not():
    """The optional data's trailing fillers read as ``K`` are settled (no check digit sees
    them); the data before its first filler, and the document number, stay as read."""
    from vigil.identity._mrz import check_blind_positions, optional_filler_runs

    truth = "KE2240143<UTO7408122F1204159ZE184226K<<<<<10"
    read = "KE2240143<UTO7408122F1204159ZE184226KK<K<K10"
    keep = [blind - after for blind, after in zip(
        check_blind_positions("TD3"), optional_filler_runs("TD3", ["P" * 44, read]),
        strict=True)]
    # the number's K (position 0) and everything up to the data's first filler (38) are
    # held, the misread K at 37 too (it could be data); 39-41 are not
    assert {0, 36, 37, 38} <= keep[1] and not {39, 40, 41} & keep[1]
    settled = settle_fillers(_line_image(truth), read, keep[1])
    assert settled == "KE2240143<UTO7408122F1204159ZE184226KK<<<<10"
