"""The document check: read an uploaded passport page or ID card, verify its MRZ, and hold
what it says against the printed page, the session's rules and the user's claims.

Order of the verdicts (the first that applies is raised as :class:`CheckFailed`):

1. ``document_unverified_other``: a file that is not an image;
2. ``document_type_not_supported``: no MRZ on the front and no back given (an ID card's MRZ
   is on its back), or a document type the session does not allow;
3. ``document_mrz_unreadable``: MRZ lines found, but no single identity passes every check
   digit, even after the OCR repair and second readings;
4. ``document_unverified_other``: an issuing state or nationality that is no ICAO code;
5. ``document_expired``; 6. ``document_too_young``;
7. ``document_unverified_other``: the printed page disagrees with the MRZ (birth date,
   expiry date, document number, surname), or the claimed name or birth date disagrees.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from vigil.identity._mrz import (
    ICAO_CODES,
    MrzRead,
    _guess_format,
    _normalise,
    check_blind_positions,
    optional_filler_runs,
    read_mrz,
)
from vigil.identity._types import CheckFailed, Claimed, DocumentFields

# fuzzy name agreement (difflib ratio) needed between the MRZ, the printed page and the claim
NAME_MATCH = 0.8
_DATE = re.compile(r"(\d{2})[.\-/ ](\d{2})[.\-/ ](\d{4})")
# characters folded together before document numbers are compared (OCR confusions)
_FOLD = str.maketrans("OQDILZSBGT", "0001125867")


def _image(data: bytes, what: str):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as exc:
        raise CheckFailed("document_unverified_other",
                          f"the {what} is not an image file; upload a PNG or JPEG") from exc
    return img.convert("RGB")


def read_document_mrz(image, *, today: date) -> tuple[MrzRead | None, tuple[str, ...]]:
    """The verified MRZ of an image, and the lines as first read (``()``: no MRZ found).

    Every reading has its fillers and the letters like them settled against the pixels first
    (:func:`~vigil.identity._mrz_glyphs.settle_fillers`). The first reading is tried alone;
    when it fails, the second readings (:func:`~vigil.identity._ocr.mrz_line_variants`) and
    every mix of their lines are tried, and the result stands only if all readings that pass
    agree on one identity. A read that passes is then held to the pixels
    (:func:`~vigil.identity._mrz_glyphs.doubted_cells`): a letter or digit of its document
    number or optional data that looks clearly like another character refuses it. Returns
    ``(None, lines)`` when nothing passes.
    """
    import itertools

    from vigil.identity._mrz_glyphs import doubted_cells, settle_fillers
    from vigil.identity._ocr import find_mrz, mrz_line_variants

    candidate = find_mrz(image)
    if candidate is None:
        return None, ()
    first = candidate.lines

    def settled(lines: tuple[str, ...]) -> tuple[str, ...]:
        norm = [_normalise(line) for line in lines]
        try:
            fmt = _guess_format([n for n in norm if n])
            keep = [blind - after for blind, after in zip(
                check_blind_positions(fmt), optional_filler_runs(fmt, norm), strict=True)]
        except CheckFailed:
            keep = []
        if len(keep) != len(norm):
            keep = [frozenset()] * len(norm)
        return tuple(settle_fillers(crop, line, held)
                     for crop, line, held in zip(candidate.crops, norm, keep, strict=True))

    def looks_right(read: MrzRead) -> bool:
        blind = check_blind_positions(read.fields.mrz_format)
        if len(blind) != len(candidate.crops):
            return True  # the cells cannot be placed: the check digits have the last word
        return not any(
            doubted_cells(crop, line, held)
            for crop, line, held in zip(candidate.crops, read.lines, blind, strict=True))

    try:
        read = read_mrz(settled(first), today=today)
        return (read if looks_right(read) else None), first
    except CheckFailed as exc:
        if exc.code != "document_mrz_unreadable":
            raise
    readings = [settled(first), *(settled(v) for v in mrz_line_variants(candidate))]
    per_line = [list(dict.fromkeys(r[i] for r in readings)) for i in range(len(first))]
    accepted: dict[DocumentFields, MrzRead] = {}
    for lines in itertools.product(*per_line):
        try:
            read = read_mrz(lines, today=today)
        except CheckFailed:
            continue
        accepted.setdefault(replace(read.fields, repaired=0), read)
    identities = {(f.document_number, f.birth_date, f.expiry_date, f.issuing_country,
                   f.nationality, f.sex) for f in accepted}
    if len(identities) != 1:
        return None, first
    # the same identity; the names may differ by OCR: keep the least repaired reading
    read = min(accepted.values(), key=lambda r: r.fields.repaired)
    return (read if looks_right(read) else None), first


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _mrz_form(text: str) -> str:
    return re.sub(r"[^A-Z ]", "", re.sub(r"[\s\-]+", " ", text.upper())).strip()


def _printed_name(mrz_name: str, texts: list[str]) -> str | None:
    """The printed line that is the MRZ's name (the MRZ may be truncated), or None."""
    if not mrz_name:
        return None
    best, best_score = None, 0.0
    for text in texts:
        form = _mrz_form(text)
        if not form:
            continue
        score = max(_similar(mrz_name, form), _similar(mrz_name, form[:len(mrz_name)]))
        if score > best_score:
            best, best_score = form, score
    return best if best_score >= NAME_MATCH else None


def _with_word_breaks(printed: str, mrz: str) -> str:
    """The printed name with the MRZ's word breaks where the page's OCR lost them (it reads
    ``ISAAC KATJA`` as ``ISAACKATJA``); what the MRZ truncated stays with its last word."""
    if " " in printed or " " not in mrz:
        return printed
    flat = mrz.replace(" ", "")
    if _similar(printed[:len(flat)], flat) < NAME_MATCH:
        return printed
    words, pos = [], 0
    for word in mrz.split():
        words.append(printed[pos:pos + len(word)])
        pos += len(word)
    words[-1] += printed[pos:]
    return " ".join(w for w in words if w)


def _cross_check_printed(fields: DocumentFields, texts: list[str]) -> DocumentFields:
    """Hold the MRZ against the printed page; return the fields with the printed names."""
    dates = set()
    for text in texts:
        for dd, mm, yyyy in _DATE.findall(text):
            try:
                dates.add(date(int(yyyy), int(mm), int(dd)))
            except ValueError:
                continue
    if fields.birth_date not in dates:
        raise CheckFailed("document_unverified_other",
                          "the printed date of birth does not match the machine-readable zone")
    if fields.expiry_date is not None and fields.expiry_date not in dates:
        raise CheckFailed("document_unverified_other",
                          "the printed expiry date does not match the machine-readable zone")
    number = fields.document_number.translate(_FOLD)
    if not any(number in re.sub(r"[^A-Z0-9]", "", t.upper()).translate(_FOLD) for t in texts):
        raise CheckFailed("document_unverified_other",
                          "the printed document number does not match the machine-readable zone")
    surname = _printed_name(fields.surname, texts)
    if surname is None:
        raise CheckFailed("document_unverified_other",
                          "the printed surname does not match the machine-readable zone")
    given = _printed_name(fields.given_names, texts) if fields.given_names else ""
    # names have no check digit: the printed page, read separately, is the better reading of
    # the letters; the MRZ's fillers are the better reading of where words break
    return replace(fields, surname=_with_word_breaks(surname, fields.surname),
                   given_names=_with_word_breaks(given, fields.given_names) if given
                   else fields.given_names)


def _age(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _check_claims(fields: DocumentFields, claimed: Claimed) -> None:
    if claimed.birth_date is not None and claimed.birth_date != fields.birth_date:
        raise CheckFailed("document_unverified_other",
                          "the date of birth on the document is not the one given")
    if claimed.name:
        # every name given must be on the document (a middle name may be left out), and one
        # of them must be the surname; each compared fuzzily, in any order
        said = _mrz_form(claimed.name).split()
        surname = _mrz_form(fields.surname).split()
        names = surname + _mrz_form(fields.given_names).split()

        def found(word: str, among: list[str]) -> bool:
            return any(_similar(word, other) >= NAME_MATCH for other in among)

        # the page's OCR may run given names together (ANNA AKIKO read as ANNAAKIKO), and
        # where the MRZ truncated them it has no word break to give back: the words not
        # found one by one may then match the run-together names as a whole
        missing = [w for w in said if not found(w, names)]
        flat_given = _mrz_form(fields.given_names).replace(" ", "")
        if missing and flat_given and _similar("".join(missing), flat_given) >= NAME_MATCH:
            missing = []
        if not said or missing or not any(found(w, surname) for w in said):
            raise CheckFailed("document_unverified_other",
                              "the name on the document is not the one given")


def check_document(front: bytes, back: bytes | None, *, allowed_types: Sequence[str],
                   min_age: int | None, claimed: Claimed, today: date) -> DocumentFields:
    """Verify a document from its uploaded images; the verified fields, or :class:`CheckFailed`.

    ``front`` is a passport's data page or an ID card's front; ``back`` an ID card's back (its
    MRZ). ``allowed_types`` are names from ``DOCUMENT_TYPES``; ``min_age`` the youngest
    holder accepted on ``today``. The order of the verdicts is in the module docstring.
    """
    from vigil.identity._ocr import read_text

    front_img = _image(front, "front image")
    back_img = _image(back, "back image") if back is not None else None
    read, first = read_document_mrz(front_img, today=today)
    if read is None and not first:
        if back_img is None:
            raise CheckFailed("document_type_not_supported",
                              "no machine-readable zone on the front image; an identity "
                              "card's is on its back, so upload the back as well")
        read, first = read_document_mrz(back_img, today=today)
        if read is None and not first:
            raise CheckFailed("document_mrz_unreadable",
                              "no machine-readable zone was found on either image")
    if read is None:
        raise CheckFailed("document_mrz_unreadable",
                          "the machine-readable zone's check digits do not agree")
    fields = read.fields
    if fields.document_type not in allowed_types:
        raise CheckFailed("document_type_not_supported",
                          f"a {fields.document_type} is not accepted here; accepted: "
                          f"{', '.join(allowed_types)}")
    for code in (fields.issuing_country, fields.nationality):
        if code not in ICAO_CODES:
            raise CheckFailed("document_unverified_other",
                              f"{code!r} is not an ICAO issuing state or nationality code")
    if fields.expiry_date is not None and fields.expiry_date < today:
        raise CheckFailed("document_expired", f"the document expired on {fields.expiry_date}")
    if min_age is not None and _age(fields.birth_date, today) < min_age:
        raise CheckFailed("document_too_young",
                          f"the holder is younger than {min_age} on {today}")
    mrz_text = set(first)
    texts = [line.text for line in read_text(front_img) if line.text not in mrz_text]
    fields = _cross_check_printed(fields, texts)
    _check_claims(fields, claimed)
    return fields
