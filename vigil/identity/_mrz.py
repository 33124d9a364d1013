"""ICAO 9303 machine-readable zones: compose one, and read one back from OCR text, repairing
the characters OCR confuses only where the check digits prove the repair.

Three layouts (ICAO 9303 parts 4-6)::

    TD3 (passport, 2 x 44)   P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<
                             L898902C36UTO7408122F1204159ZE184226B<<<<<10
    TD2 (2 x 36)             I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<
                             D231458907UTO7408122F1204159<<<<<<<6
    TD1 (ID card, 3 x 30)    I<UTOD231458907<<<<<<<<<<<<<<<
                             7408122F1204159UTO<<<<<<<<<<<6
                             ERIKSSON<<ANNA<MARIA<<<<<<<<<<

Check digits weigh the characters 7, 3, 1, 7, 3, 1, ... with ``<`` = 0, ``0``-``9`` their
value and ``A``-``Z`` = 10-35; the digit is the sum modulo 10.

How a read is repaired (:func:`read_mrz`), and why it never returns a wrong identity that
the check digits could have caught:

1. **Layout and length.** Spaces and filler look-alikes (``«``, ``‹``, ``(`` ...) become
   ``<``; a line that is a few characters too long or short gains or loses fillers in one of
   its filler runs. Every placement that gives the right length is a separate candidate.
2. **Character classes.** A date or a check digit is numeric, so ``O`` there can only be
   ``0``; a country code, the sex and the names are alphabetic, so ``0`` there is ``O``.
   These repairs are certain and always made. A run of ``K`` and ``C`` between fillers is
   fillers (OCR reads ``<`` as those letters; ``L`` and ``E`` are not taken, since names
   such as ``LEE`` are made of them).
3. **Alphanumeric fields** (document number, optional data, personal number) could hold
   either ``0`` or ``O``. Alternatives from :data:`ALNUM_CONFUSIONS` are tried, fewest
   changes first (at most :data:`MAX_SUBSTITUTIONS`). The first number of changes at which
   some candidate passes *every* check digit decides; when that number is not zero, the
   candidates with one change more count too (two OCR errors in a field can otherwise be
   "repaired" by one substitution into a different number that passes). Exactly one
   identity (and optional data) among them is accepted; two or more are refused with
   ``document_mrz_unreadable``.

.. warning::
   A check digit proves a single confusion wrong, never two that cancel. The pairs
   ``G``/``6`` and ``L``/``1`` differ by 10 and 20 in value, so no check digit can tell them
   apart in an alphanumeric field; they are taken as read there. Names have no check digit
   at all: the name is only as good as the OCR, and must be cross-checked against the printed
   page or the claimed name (:attr:`MrzRead.name_field` keeps what was read).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from vigil.identity._types import CheckFailed, DocumentFields

# most substitutions tried in a read's alphanumeric fields. One, because with two a check digit
# misread by 5 (3 for 8) could be "repaired" by two substitutions in the document number that
# together shift its sum by 5: a different, consistent, wrong number. No single confusion in
# ALNUM_CONFUSIONS shifts a weighted sum by 5 (no value difference is a multiple of 5).
MAX_SUBSTITUTIONS = 1
# most fillers added to or removed from one line to give it the right length
MAX_LENGTH_REPAIR = 3
LINE_LENGTHS = {"TD1": (30, 30, 30), "TD2": (36, 36), "TD3": (44, 44)}

# numeric positions: letters OCR produces for digits
TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "J": "1", "Z": "2",
            "S": "5", "B": "8", "G": "6", "T": "7", "A": "4"}
# alphabetic positions: digits OCR produces for letters
TO_LETTER = {"0": "O", "1": "I", "2": "Z", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B"}
# alphanumeric positions: what each character might have been; only pairs a check digit can
# tell apart (values not congruent modulo 10), so G/6 and L/1 are absent
ALNUM_CONFUSIONS = {"0": "OQD", "O": "0Q", "Q": "0O", "D": "0", "1": "I", "I": "1",
                    "8": "B", "B": "8", "5": "S", "S": "5", "2": "Z", "Z": "2",
                    "7": "T", "T": "7"}
# letters OCR reads a filler ``<`` as, when the filler stands between other fillers
FILLER_LETTERS = "KC"
# never letters: OCR's other renderings of ``<``
FILLER_MARKS = "«‹＜〈(<[{"
_CLEAN = re.compile(r"[^A-Z0-9<]")


# ICAO 9303 part 3 codes for issuing states and nationalities: ISO 3166-1 alpha-3, Germany's
# "D", the British, UN and refugee codes, and the specimen state Utopia ("UTO")
_ICAO_CODE_LIST = """
AFG ALA ALB DZA ASM AND AGO AIA ATA ATG ARG ARM ABW AUS AUT AZE BHS BHR BGD BRB BLR BEL BLZ
BEN BMU BTN BOL BES BIH BWA BVT BRA IOT BRN BGR BFA BDI CPV KHM CMR CAN CYM CAF TCD CHL CHN
CXR CCK COL COM COG COD COK CRI CIV HRV CUB CUW CYP CZE DNK DJI DMA DOM ECU EGY SLV GNQ ERI
EST SWZ ETH FLK FRO FJI FIN FRA GUF PYF ATF GAB GMB GEO DEU GHA GIB GRC GRL GRD GLP GUM GTM
GGY GIN GNB GUY HTI HMD VAT HND HKG HUN ISL IND IDN IRN IRQ IRL IMN ISR ITA JAM JPN JEY JOR
KAZ KEN KIR PRK KOR KWT KGZ LAO LVA LBN LSO LBR LBY LIE LTU LUX MAC MDG MWI MYS MDV MLI MLT
MHL MTQ MRT MUS MYT MEX FSM MDA MCO MNG MNE MSR MAR MOZ MMR NAM NRU NPL NLD NCL NZL NIC NER
NGA NIU NFK MKD MNP NOR OMN PAK PLW PSE PAN PNG PRY PER PHL PCN POL PRT PRI QAT REU ROU RUS
RWA BLM SHN KNA LCA MAF SPM VCT WSM SMR STP SAU SEN SRB SYC SLE SGP SXM SVK SVN SLB SOM ZAF
SGS SSD ESP LKA SDN SUR SJM SWE CHE SYR TWN TJK TZA THA TLS TGO TKL TON TTO TUN TUR TKM TCA
TUV UGA UKR ARE GBR USA UMI URY UZB VUT VEN VNM VGB VIR WLF ESH YEM ZMB ZWE
D GBD GBN GBO GBP GBS UNO UNA UNK XXA XXB XXC XXX EUE RKS XOM XPO XCC XES XMP XDC XBA XIM UTO
"""
ICAO_CODES = frozenset(_ICAO_CODE_LIST.split())


def check_digit(text: str) -> int:
    """The ICAO 9303 check digit of ``text`` (characters ``0-9``, ``A-Z`` and ``<``).

    >>> check_digit("L898902C3"), check_digit("740812"), check_digit("<<<<<<")
    (6, 2, 0)
    """
    total = 0
    for i, ch in enumerate(text):
        total += _value(ch) * (7, 3, 1)[i % 3]
    return total % 10


def _value(ch: str) -> int:
    if ch == "<":
        return 0
    if ch.isdigit():
        return ord(ch) - 48
    if "A" <= ch <= "Z":
        return ord(ch) - 55
    raise ValueError(f"{ch!r} is not an MRZ character; use 0-9, A-Z or '<'")


# ---------------------------------------------------------------------------- compose


def mrz_name(surname: str, given_names: str, width: int) -> str:
    """The name field: ``SURNAME<<GIVEN<NAMES`` padded with ``<`` or truncated to ``width``.

    Spaces and hyphens become ``<``, other punctuation goes (ICAO 9303 part 3 transliterates
    letters with diacritics; this takes ASCII names only).
    """
    def part(text: str) -> str:
        text = re.sub(r"[\s\-]+", "<", text.strip().upper())
        return re.sub(r"[^A-Z<]", "", text)

    name = part(surname) + ("<<" + part(given_names) if given_names.strip() else "")
    return name[:width].ljust(width, "<")


def _yymmdd(day: date | None) -> str:
    return "<<<<<<" if day is None else day.strftime("%y%m%d")


def _field(text: str, width: int) -> str:
    if len(text) > width or _CLEAN.search(text):
        raise ValueError(f"{text!r} does not fit an MRZ field of {width} characters A-Z 0-9 <")
    return text.ljust(width, "<")


def _number_fields(number: str, width: int) -> tuple[str, str, str]:
    """Document number, its check digit, and the overflow that opens the optional data."""
    if len(number) <= width:
        return _field(number, width), str(check_digit(number.ljust(width, "<"))), ""
    # TD1/TD2 long numbers: the check position says '<' and the rest follows in optional data
    return number[:width], "<", number[width:] + str(check_digit(number)) + "<"


def compose_mrz(fields: DocumentFields, *, mrz_format: str | None = None,
                document_code: str | None = None, optional_data: str = "") -> tuple[str, ...]:
    """The MRZ lines that encode ``fields`` (names truncated to fit, see :func:`mrz_name`).

    ``mrz_format`` defaults to TD3 for passports and TD1 otherwise; ``document_code`` to
    ``P<`` or ``I<``. ``optional_data`` is the TD3 personal number, or the TD1/TD2 optional
    data. Long TD1/TD2 document numbers overflow into the optional data, as ICAO allows.
    """
    fmt = mrz_format or ("TD3" if fields.document_type == "passport" else "TD1")
    if fmt not in LINE_LENGTHS:
        raise ValueError(f"mrz_format {fmt!r} is not one of TD1, TD2, TD3")
    code = _field(document_code or ("P" if fields.document_type == "passport" else "I"), 2)
    country = _field(fields.issuing_country, 3)
    nationality = _field(fields.nationality, 3)
    birth, expiry = _yymmdd(fields.birth_date), _yymmdd(fields.expiry_date)
    birth_cd = str(check_digit(birth))
    expiry_cd = str(check_digit(expiry)) if fields.expiry_date else "<"
    sex = {"M": "M", "F": "F", "X": "<"}[fields.sex]
    if fmt == "TD3":
        number, number_cd, overflow = _number_fields(fields.document_number, 9)
        if overflow:
            raise ValueError("a TD3 document number has at most 9 characters")
        personal = _field(optional_data, 14)
        personal_cd = "<" if not optional_data else str(check_digit(personal))
        line2 = (number + number_cd + nationality + birth + birth_cd + sex + expiry + expiry_cd
                 + personal + personal_cd)
        composite = line2[0:10] + line2[13:20] + line2[21:43]
        line1 = code + country + mrz_name(fields.surname, fields.given_names, 39)
        return line1, line2 + str(check_digit(composite))
    number, number_cd, overflow = _number_fields(fields.document_number, 9)
    if fmt == "TD2":
        optional = _field(overflow + optional_data, 7)
        line2 = (number + number_cd + nationality + birth + birth_cd + sex + expiry + expiry_cd
                 + optional)
        composite = line2[0:10] + line2[13:20] + line2[21:35]
        line1 = code + country + mrz_name(fields.surname, fields.given_names, 31)
        return line1, line2 + str(check_digit(composite))
    line1 = code + country + number + number_cd + _field(overflow + optional_data, 15)
    line2 = birth + birth_cd + sex + expiry + expiry_cd + nationality + "<" * 11
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    line3 = mrz_name(fields.surname, fields.given_names, 30)
    return line1, line2 + str(check_digit(composite)), line3


# ---------------------------------------------------------------------------- layout

# (kind, line, start, length) for each field; kinds: code, country, number, check, date,
# sex, alnum (optional data), name, composite
_Spec = tuple[str, str, int, int, int]
LAYOUTS: dict[str, tuple[_Spec, ...]] = {
    "TD3": (("code", "code", 0, 0, 2), ("issuing_country", "country", 0, 2, 3),
            ("name", "name", 0, 5, 39),
            ("number", "alnum", 1, 0, 9), ("number_cd", "check", 1, 9, 1),
            ("nationality", "country", 1, 10, 3), ("birth", "date", 1, 13, 6),
            ("birth_cd", "check", 1, 19, 1), ("sex", "sex", 1, 20, 1),
            ("expiry", "date", 1, 21, 6), ("expiry_cd", "check", 1, 27, 1),
            ("optional", "alnum", 1, 28, 14), ("optional_cd", "check", 1, 42, 1),
            ("composite", "check", 1, 43, 1)),
    "TD2": (("code", "code", 0, 0, 2), ("issuing_country", "country", 0, 2, 3),
            ("name", "name", 0, 5, 31),
            ("number", "alnum", 1, 0, 9), ("number_cd", "check", 1, 9, 1),
            ("nationality", "country", 1, 10, 3), ("birth", "date", 1, 13, 6),
            ("birth_cd", "check", 1, 19, 1), ("sex", "sex", 1, 20, 1),
            ("expiry", "date", 1, 21, 6), ("expiry_cd", "check", 1, 27, 1),
            ("optional", "alnum", 1, 28, 7), ("composite", "check", 1, 35, 1)),
    "TD1": (("code", "code", 0, 0, 2), ("issuing_country", "country", 0, 2, 3),
            ("number", "alnum", 0, 5, 9), ("number_cd", "check", 0, 14, 1),
            ("optional", "alnum", 0, 15, 15),
            ("birth", "date", 1, 0, 6), ("birth_cd", "check", 1, 6, 1),
            ("sex", "sex", 1, 7, 1), ("expiry", "date", 1, 8, 6),
            ("expiry_cd", "check", 1, 14, 1), ("nationality", "country", 1, 15, 3),
            ("optional2", "alnum", 1, 18, 11), ("composite", "check", 1, 29, 1),
            ("name", "name", 2, 0, 30)),
}


def check_blind_positions(fmt: str) -> list[frozenset[int]]:
    """Per line of format ``fmt``, the positions of its alphanumeric fields (document number,
    optional data): there a ``K`` and a filler ``<`` weigh the same in a check digit (20 and
    0, equal modulo 10), so no check digit can tell which one OCR should have read."""
    out: list[set[int]] = [set() for _ in LINE_LENGTHS[fmt]]
    for _name, kind, line, start, length in LAYOUTS[fmt]:
        if kind == "alnum":
            out[line].update(range(start, start + length))
    return [frozenset(p) for p in out]


def optional_filler_runs(fmt: str, lines: Sequence[str]) -> list[frozenset[int]]:
    """Per line of format ``fmt`` as read, the positions of its optional data that follow the
    field's first filler ``<``: where the data has ended and a ``K`` can only be a filler
    misread (no check digit can say; the pixels can). What comes before the first filler is
    data -- for a long TD1/TD2 document number, the number's overflow and its check digit --
    and stays as read."""
    out: list[set[int]] = [set() for _ in LINE_LENGTHS[fmt]]
    for name, _kind, line, start, length in LAYOUTS[fmt]:
        if name in ("optional", "optional2") and line < len(lines):
            field = lines[line][start:start + length]
            first = field.find("<")
            if first >= 0:
                out[line].update(range(start + first + 1, start + len(field)))
    return [frozenset(p) for p in out]


# a document number: letters and digits, then only fillers (a filler never comes first or
# between its characters)
_NUMBER = re.compile(r"[A-Z0-9]+<*")
# the composite check digit covers these (line, start, end) slices, in order
_COMPOSITE = {"TD3": ((1, 0, 10), (1, 13, 20), (1, 21, 43)),
              "TD2": ((1, 0, 10), (1, 13, 20), (1, 21, 35)),
              "TD1": ((0, 5, 30), (1, 0, 7), (1, 8, 15), (1, 18, 29))}


@dataclass(frozen=True)
class MrzRead:
    """A verified MRZ read: the fields, the repaired lines, and what no check digit covers.

    ``name_field`` is the name as OCR read it (classes mapped, fillers not guessed), for a
    cross-check against the printed name; ``fields`` carries the filler-normalised name.
    """

    fields: DocumentFields
    lines: tuple[str, ...]
    name_field: str
    optional_data: str


def _unreadable(reason: str) -> CheckFailed:
    return CheckFailed("document_mrz_unreadable", reason)


def _normalise(line: str) -> str:
    # full-width digits and the like become ASCII; a multiplication sign is an X
    text = unicodedata.normalize("NFKC", line).upper().replace("×", "X")
    for mark in FILLER_MARKS:
        text = text.replace(mark, "<")
    return _CLEAN.sub("", text.replace(" ", ""))


def _guess_format(lines: list[str]) -> str:
    if len(lines) == 3:
        return "TD1"
    if len(lines) != 2:
        raise _unreadable(f"found {len(lines)} MRZ lines; a MRZ has 2 (passport) or 3 (ID card)")
    # OCR drops characters more often than it invents them: the longer line tells
    longest = max(len(lines[0]), len(lines[1]))
    return "TD3" if longest > 40 else "TD2"


def _length_variants(line: str, width: int) -> list[tuple[str, int]]:
    """Ways to give ``line`` the right length by changing one run of fillers; with the count."""
    diff = width - len(line)
    if diff == 0:
        return [(line, 0)]
    if abs(diff) > MAX_LENGTH_REPAIR:
        return []
    out: list[tuple[str, int]] = []
    for run in re.finditer(r"<+", line):
        a, b = run.span()
        if diff < 0 and b - a < -diff + (0 if b == len(line) else 1):
            continue  # never remove a run's last filler unless it ends the line
        new_len = b - a + diff
        out.append((line[:a] + "<" * new_len + line[b:], abs(diff)))
    if diff > 0 and not line.endswith("<"):
        out.append((line + "<" * diff, diff))
    return list(dict.fromkeys(out))


def _name_length_variants(line: str, start: int, width: int) -> list[tuple[str, int]]:
    """Name lines: only the trailing fillers change, since inner ``<`` and ``<<`` mean something."""
    total = start + width
    diff = total - len(line)
    if diff == 0:
        return [(line, 0)]
    if abs(diff) > MAX_LENGTH_REPAIR:
        return []
    stripped = line.rstrip("<")
    trailing = len(line) - len(stripped)
    if diff < 0 and trailing < -diff:
        return []
    return [(stripped + "<" * (trailing + diff), abs(diff))]


def _fillers_between(text: str) -> str:
    """Runs of ``K``/``C`` with a filler on the left and a filler or the end on the right are
    fillers that OCR read as letters (no name part is made of K and C alone)."""
    def swap(match: re.Match[str]) -> str:
        return "<" + "<" * (len(match.group(0)) - 1)

    prev = None
    while prev != text:
        prev = text
        text = re.sub(rf"(?<=<)[{FILLER_LETTERS}]+(?=<|$)", swap, text)
    return text


# what OCR may have made of a country code's letters (digits and close letters)
_COUNTRY_CONFUSIONS = {"0": "ODQ", "1": "IL", "2": "Z", "4": "A", "5": "S", "6": "G", "7": "T",
                       "8": "B", "O": "DQ", "D": "O", "Q": "O", "I": "L", "L": "I", "K": "<",
                       "C": "<"}


def _country(text: str) -> str:
    """A country code as read (``0<<``, ``DKK``, ``UT0``) made a known ICAO code when exactly
    one reading of its confusable characters is one; otherwise as read, letters for digits
    (the document check refuses an unknown code)."""
    literal = _map_class(text, TO_LETTER)
    if _known_code(literal):
        return literal
    options = [ch + _COUNTRY_CONFUSIONS.get(ch, "") for ch in text]
    known = {code for code in map("".join, itertools.product(*options)) if _known_code(code)}
    return known.pop() if len(known) == 1 else literal


def _known_code(code: str) -> bool:
    stripped = code.rstrip("<")
    return stripped in ICAO_CODES and "<" not in stripped


def _map_class(text: str, table: dict[str, str]) -> str:
    return "".join(table.get(ch, ch) for ch in text)


def _parse_date(text: str, what: str) -> tuple[int, int, int]:
    if not text.isdigit():
        raise _unreadable(f"the {what} {text!r} is not a YYMMDD date")
    return int(text[0:2]), int(text[2:4]), int(text[4:6])


def _resolve_birth(text: str, today: date) -> date:
    yy, mm, dd = _parse_date(text, "birth date")
    for century in (2000, 1900):
        try:
            day = date(century + yy, mm, dd)
        except ValueError as exc:
            raise _unreadable(f"the birth date {text!r} is not a calendar date") from exc
        if day <= today:
            return day
    raise _unreadable(f"the birth date {text!r} is in the future")


def _resolve_expiry(text: str, today: date) -> date | None:
    if text == "<<<<<<":
        return None
    yy, mm, dd = _parse_date(text, "expiry date")
    # documents are valid for at most a few decades: 20YY unless that is over 50 years away
    century = 2000 if 2000 + yy <= today.year + 50 else 1900
    try:
        return date(century + yy, mm, dd)
    except ValueError as exc:
        raise _unreadable(f"the expiry date {text!r} is not a calendar date") from exc


def _split_name(field: str) -> tuple[str, str]:
    field = field.rstrip("<")
    surname, _, given = field.partition("<<")
    return surname.replace("<", " ").strip(), given.replace("<", " ").strip()


def _document_type(code: str) -> str:
    if code[0] == "P":
        return "passport"
    if code[0] in "IAC":
        return "id_card"
    if code[0] == "V":
        raise CheckFailed("document_type_not_supported",
                          "the MRZ is a visa's (V); upload a passport or an identity card")
    raise _unreadable(f"the MRZ document code {code!r} is none of P, I, A, C")


class _Line:
    """Mutable view of the candidate lines, indexed by field name."""

    def __init__(self, fmt: str, lines: list[str]):
        self.fmt = fmt
        self.lines = [list(line) for line in lines]
        self.spec = {s[0]: s[1:] for s in LAYOUTS[fmt]}

    def get(self, name: str) -> str:
        _, line, start, length = self.spec[name]
        return "".join(self.lines[line][start:start + length])

    def put(self, name: str, text: str) -> None:
        _, line, start, length = self.spec[name]
        self.lines[line][start:start + length] = list(text)

    def text(self) -> list[str]:
        return ["".join(chars) for chars in self.lines]


def _deterministic(fmt: str, lines: list[str]) -> tuple[list[str], str]:
    """Step 2 of the repair: class mapping and fillers; returns the lines and the raw name."""
    view = _Line(fmt, lines)
    for name, (kind, _line, _start, _length) in view.spec.items():
        text = view.get(name)
        if kind in ("check", "date"):
            text = _map_class(text, TO_DIGIT)
            if kind == "date" and text.count("<") >= 4:
                text = "<<<<<<"  # an expiry left blank
        elif kind in ("code", "country", "sex", "name"):
            text = _country(text) if kind == "country" else _map_class(text, TO_LETTER)
            if kind == "code" and text[1:] in ("K", "C") and text != "AC":
                text = text[0] + "<"  # P<, I<: no such codes as PK, IC (AC is a crew card)
            if kind == "sex" and text not in ("M", "F", "X", "<"):
                raise _unreadable(f"the sex {text!r} is none of M, F, X, <")
        view.put(name, text)
    raw_name = view.get("name")
    # fillers read as letters, judged on whole lines (a run may straddle two fields) but
    # changed only where a filler may stand
    for li, line in enumerate(view.text()):
        swapped = _fillers_between(line)
        for kind, line_no, start, length in view.spec.values():
            if line_no == li and kind in ("code", "country", "name", "alnum"):
                if kind == "country" and "".join(
                        view.lines[li][start:start + length]) in ICAO_CODES:
                    continue  # a code as read (CCK, not a run of fillers)
                view.lines[li][start:start + length] = list(swapped[start:start + length])
    return view.text(), raw_name


def _checks_pass(view: _Line) -> bool:
    def ok(field: str, digit: str, blank_ok: bool) -> bool:
        if digit == "<":
            return blank_ok and set(field) == {"<"}
        return digit.isdigit() and check_digit(field) == int(digit)

    number_cd = view.get("number_cd")
    optional = view.get("optional")
    if number_cd == "<" and view.fmt != "TD3":
        # long number: the overflow and its check digit open the optional data
        overflow = optional.split("<", 1)[0]
        if len(overflow) < 2 or not overflow[-1].isdigit():
            return False
        if check_digit(view.get("number") + overflow[:-1]) != int(overflow[-1]):
            return False
    elif not (_NUMBER.fullmatch(view.get("number"))
              and ok(view.get("number"), number_cd, False)):
        return False
    if not ok(view.get("birth"), view.get("birth_cd"), False):
        return False
    if not ok(view.get("expiry"), view.get("expiry_cd"), True):
        return False
    if view.fmt == "TD3":
        cd = view.get("optional_cd")
        if not (ok(optional, cd, True) or (cd == "0" and set(optional) == {"<"})):
            return False
    lines = view.text()
    composite = "".join(lines[i][a:b] for i, a, b in _COMPOSITE[view.fmt])
    digit = view.get("composite")
    return digit.isdigit() and check_digit(composite) == int(digit)


def _alnum_positions(view: _Line) -> list[tuple[int, int, str]]:
    out = []
    for kind, line, start, length in view.spec.values():
        if kind == "alnum":
            for i in range(start, start + length):
                alts = ALNUM_CONFUSIONS.get(view.lines[line][i], "")
                if alts:
                    out.append((line, i, alts))
    return out


def _candidates(fmt: str, lines: list[str]) -> list[tuple[int, tuple[str, ...]]]:
    """Lines that pass every check digit with the fewest alphanumeric substitutions; when
    that is one or more, also those with one substitution more (see :func:`read_mrz`)."""
    view = _Line(fmt, lines)
    positions = _alnum_positions(view)
    found: list[tuple[int, tuple[str, ...]]] = []
    for cost in range(MAX_SUBSTITUTIONS + 2):
        if found and (found[0][0] == 0 or cost > found[0][0] + 1):
            break
        if not found and cost > MAX_SUBSTITUTIONS:
            break
        for chosen in itertools.combinations(positions, cost):
            for letters in itertools.product(*(alts for _l, _i, alts in chosen)):
                trial = [list(line) for line in lines]
                for (line, i, _alts), ch in zip(chosen, letters, strict=True):
                    trial[line][i] = ch
                view.lines = trial
                if _checks_pass(view):
                    found.append((cost, tuple(view.text())))
    return found


def _fields(fmt: str, lines: Sequence[str], today: date, repaired: int) -> DocumentFields:
    view = _Line(fmt, list(lines))
    number = view.get("number").rstrip("<")
    if view.get("number_cd") == "<" and fmt != "TD3":
        number += view.get("optional").split("<", 1)[0][:-1]
    surname, given = _split_name(view.get("name"))
    country = view.get("issuing_country").rstrip("<")
    nationality = view.get("nationality").rstrip("<")
    if not country or "<" in country or not nationality or "<" in nationality:
        raise _unreadable("the issuing country or nationality is not a country code")
    sex = view.get("sex")
    return DocumentFields(
        document_type=_document_type(view.get("code")), mrz_format=fmt,
        issuing_country=country, document_number=number, surname=surname,
        given_names=given, nationality=nationality,
        birth_date=_resolve_birth(view.get("birth"), today),
        expiry_date=_resolve_expiry(view.get("expiry"), today),
        sex="X" if sex == "<" else sex, repaired=repaired)


def read_mrz(lines: Sequence[str], *, today: date | None = None) -> MrzRead:
    """Parse MRZ lines as OCR read them, repairing only what the check digits prove.

    Raises :class:`CheckFailed` (``document_mrz_unreadable``) unless every check digit agrees
    and exactly one identity survives the repair; ``document_type_not_supported`` for a
    document code other than a passport's or an identity card's. Never raises anything else,
    whatever the text.

    >>> read = read_mrz(["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    ...                  "L898902C36UTO7408122F1204159ZE184226B<<<<<10"], today=date(2010, 1, 1))
    >>> read.fields.document_number, read.fields.given_names, read.fields.expiry_date
    ('L898902C3', 'ANNA MARIA', datetime.date(2012, 4, 15))
    >>> read_mrz(["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    ...           "L898902C36UTO74O8122F12O4159ZE184226B<<<<<10"],
    ...          today=date(2010, 1, 1)).fields.repaired
    2
    """
    today = today or date.today()
    try:
        norm = [_normalise(str(line)) for line in lines]
    except Exception as exc:  # arbitrary input must end as a verdict
        raise _unreadable("the MRZ text could not be read as lines of text") from exc
    # marks, spaces, lower case and the like that normalising changed count as repairs
    marks = sum(len(_CLEAN.findall(str(line))) for line in lines)
    norm = [line for line in norm if line]
    fmt = _guess_format(norm)
    layout = LAYOUTS[fmt]
    name_spec = next(s for s in layout if s[0] == "name")
    per_line = []
    for i, (line, width) in enumerate(zip(norm, LINE_LENGTHS[fmt], strict=True)):
        if i == name_spec[2]:
            per_line.append(_name_length_variants(line, name_spec[3], name_spec[4]))
        else:
            per_line.append(_length_variants(line, width))
        if not per_line[-1]:
            raise _unreadable(f"MRZ line {i + 1} has {len(line)} characters, not {width}")
    found: list[tuple[int, tuple[str, ...], int, str]] = []
    for combo in itertools.product(*per_line):
        length_fix = sum(n for _line, n in combo)
        try:
            mapped, raw_name = _deterministic(fmt, [line for line, _n in combo])
        except CheckFailed:
            continue
        for cost, cand in _candidates(fmt, mapped):
            changed = marks + length_fix + sum(
                a != b for src, out in zip(combo, cand, strict=True)
                for a, b in zip(src[0], out, strict=True))
            found.append((cost, cand, changed, raw_name))
    if not found:
        raise _unreadable("the check digits do not agree, whatever OCR confusions are undone")
    # a read that needed a substitution stands only if no other reading passes with one
    # substitution more: two OCR errors in one field could otherwise be "repaired" by one
    best = min(cost for cost, *_rest in found)
    limit = best + 1 if best else 0
    results = {cand: (changed, cand, raw_name)
               for cost, cand, changed, raw_name in found if cost <= limit}
    parsed = {}
    for changed, cand, raw_name in results.values():
        fields = _fields(fmt, cand, today, changed)
        # the optional data is held to the same rule: one reading, or none
        parsed.setdefault((replace(fields, repaired=0), _optional(fmt, cand)),
                          (fields, cand, raw_name))
    if len(parsed) > 1:
        raise _unreadable(f"{len(parsed)} different readings agree with the check digits")
    fields, cand, raw_name = next(iter(parsed.values()))
    return MrzRead(fields=fields, lines=cand, name_field=raw_name,
                   optional_data=_optional(fmt, cand))


def _optional(fmt: str, lines: Sequence[str]) -> str:
    view = _Line(fmt, list(lines))
    return view.get("optional") + (view.get("optional2") if fmt == "TD1" else "")


def parse_mrz(lines: Sequence[str], *, today: date | None = None) -> DocumentFields:
    """The verified fields of an MRZ (see :func:`read_mrz`, which also keeps the raw name)."""
    return read_mrz(lines, today=today).fields

