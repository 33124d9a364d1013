"""The ID-number check: is the number well formed for its country, and does a reference source
(a government registry, a credit bureau, or an in-memory table in tests) hold it under the
claimed name and date of birth?

Each country's format rule lives in :data:`ID_NUMBER_RULES`, keyed by ISO 3166-1 alpha-2 code;
:func:`validate_id_number` applies one and returns the number in its compact normal form
(upper case, no spaces, dashes or dots), the form a :class:`ReferenceSource` is asked about.

=====  ==========================  ======================================================
code   number                      rule
=====  ==========================  ======================================================
BR     CPF (Cadastro de Pessoas    11 digits; the last two are mod-11 check digits
       Físicas)                    (weights 10..2, then 11..2, a remainder of 10 written 0);
                                   all-equal digits refused. The 10-to-0 wrap lets about
                                   0.2% of mistyped digits through, all where the first
                                   check digit is 0
CA     SIN (Social Insurance       9 digits, Luhn check digit; first digit 0 (never
       Number)                     issued) and 8 (business numbers) refused
ES     DNI / NIE                   8 digits, or X/Y/Z and 7 digits, then the letter
                                   ``TRWAGMYFPDXBNJZSQVHLCKE[n % 23]`` (X, Y, Z count 0, 1, 2)
GB     NINO (National Insurance    2 letters, 6 digits, suffix A-D; no check digit, so only
       number)                     HMRC's prefix rules: D F I Q U V never used, O never
                                   second, BG GB KN NK NT TN ZZ never allocated
IN     Aadhaar                     12 digits, first not 0 or 1, Verhoeff check digit
US     SSN (Social Security        9 digits; area not 000, 666 or 900-999, group not 00,
       Number)                     serial not 0000; numbers published in advertising
                                   (078-05-1120, 219-09-9999) refused; no check digit
=====  ==========================  ======================================================

A number from a country not in the table is refused with ``id_number_invalid`` and a reason
naming the supported countries: vigil cannot tell a good number from a bad one there, and a
check that waves unknown numbers through would be a way around it.

>>> validate_id_number("US", "123-45-6789")
'123456789'
>>> validate_id_number("ES", "x1234567-l")
'X1234567L'
>>> validate_id_number("US", "078-05-1120")
Traceback (most recent call last):
...
vigil.identity._types.CheckFailed: id_number_invalid: this SSN was published in advertising \
and is not anyone's number
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from vigil.identity._types import CheckFailed, Claimed

# separators people type inside ID numbers: spaces, dashes, dots, slashes
_SEPARATORS = re.compile(r"[\s\-./]+")


def _invalid(reason: str) -> CheckFailed:
    return CheckFailed("id_number_invalid", reason)


def _compact(number: object) -> str:
    if not isinstance(number, str):
        raise _invalid(f"an ID number must be text, not {type(number).__name__}")
    return _SEPARATORS.sub("", number.strip()).upper()


def _digits(number: str, count: int, what: str) -> str:
    # str.isdigit() accepts "²" and Arabic-Indic digits; only ASCII digits are ID digits
    if len(number) != count or not number.isascii() or not number.isdigit():
        raise _invalid(f"a {what} has exactly {count} digits (separators are optional)")
    return number


# --- check-digit schemes -----------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits, check digit last) passes the Luhn mod-10 check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:  # every second digit from the right is doubled
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Verhoeff's tables: multiplication in the dihedral group D5, a position permutation, inverses
_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff_checksum(digits: str) -> int:
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(char)]]
    return check


def verhoeff_valid(digits: str) -> bool:
    """Whether ``digits`` (check digit last) passes Verhoeff's dihedral check (catches every
    single-digit error and every swap of neighbouring digits)."""
    return _verhoeff_checksum(digits) == 0


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to ``digits``."""
    return str(_VERHOEFF_INV[_verhoeff_checksum(digits + "0")])


def cpf_check_digits(first_nine: str) -> str:
    """The two mod-11 check digits of a Brazilian CPF whose first nine digits are given."""
    digits = [int(c) for c in first_nine]
    for _ in range(2):
        # weights run from len+1 down to 2; a remainder of 10 wraps to 0
        total = sum(d * w for d, w in zip(digits, range(len(digits) + 1, 1, -1), strict=True))
        digits.append(total * 10 % 11 % 10)
    return f"{digits[-2]}{digits[-1]}"


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_letter(number: int) -> str:
    """The control letter of a Spanish DNI (or NIE, with X/Y/Z read as 0/1/2)."""
    return _DNI_LETTERS[number % 23]


# --- one validator per country -------------------------------------------------------------

# published in advertising and used by thousands of people who took them for their own
_SSN_ADVERTISING = frozenset({"078051120", "219099999"})


def _validate_us(number: str) -> str:
    ssn = _digits(number, 9, "US Social Security number")
    area, group, serial = ssn[:3], ssn[3:5], ssn[5:]
    if area == "000" or area == "666" or area[0] == "9":
        raise _invalid("an SSN's first three digits are never 000, 666 or 900-999")
    if group == "00":
        raise _invalid("an SSN's middle two digits are never 00")
    if serial == "0000":
        raise _invalid("an SSN's last four digits are never 0000")
    if ssn in _SSN_ADVERTISING:
        raise _invalid("this SSN was published in advertising and is not anyone's number")
    return ssn


def _validate_ca(number: str) -> str:
    sin = _digits(number, 9, "Canadian Social Insurance Number")
    if sin[0] in "08":
        raise _invalid("a SIN never starts with 0 (not issued) or 8 (business numbers)")
    if not luhn_valid(sin):
        raise _invalid("the SIN's check digit (Luhn) does not match; a digit may be mistyped")
    return sin


def _validate_br(number: str) -> str:
    cpf = _digits(number, 11, "Brazilian CPF")
    if len(set(cpf)) == 1:
        raise _invalid("a CPF of one repeated digit is never issued")
    if cpf[9:] != cpf_check_digits(cpf[:9]):
        raise _invalid("the CPF's check digits do not match; a digit may be mistyped")
    return cpf


def _validate_in(number: str) -> str:
    aadhaar = _digits(number, 12, "Indian Aadhaar number")
    if aadhaar[0] in "01":
        raise _invalid("an Aadhaar number never starts with 0 or 1")
    if not verhoeff_valid(aadhaar):
        raise _invalid(
            "the Aadhaar number's check digit (Verhoeff) does not match; a digit may be mistyped"
        )
    return aadhaar


_NINO = re.compile(r"[A-Z]{2}[0-9]{6}[A-D]")
_NINO_NOT_FIRST = frozenset("DFIQUV")
_NINO_NOT_SECOND = frozenset("DFIOQUV")
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def _validate_gb(number: str) -> str:
    if not _NINO.fullmatch(number):
        raise _invalid(
            "a National Insurance number is two letters, six digits and A, B, C or D, "
            "e.g. 'AB 12 34 56 C'"
        )
    prefix = number[:2]
    if prefix[0] in _NINO_NOT_FIRST or prefix[1] in _NINO_NOT_SECOND:
        raise _invalid(
            "a National Insurance number never starts with D, F, I, Q, U or V, "
            "and its second letter is never D, F, I, O, Q, U or V"
        )
    if prefix in _NINO_UNALLOCATED:
        raise _invalid("National Insurance prefixes BG, GB, KN, NK, NT, TN and ZZ are not issued")
    return number


_DNI = re.compile(r"[0-9]{8}[A-Z]")
_NIE = re.compile(r"[XYZ][0-9]{7}[A-Z]")


def _validate_es(number: str) -> str:
    if _DNI.fullmatch(number):
        value = int(number[:8])
    elif _NIE.fullmatch(number):
        value = int(str("XYZ".index(number[0])) + number[1:8])
    else:
        raise _invalid(
            "a Spanish DNI is 8 digits and a letter (e.g. 12345678Z); "
            "an NIE is X, Y or Z, 7 digits and a letter (e.g. X1234567L)"
        )
    if number[-1] != dni_letter(value):
        raise _invalid("the DNI/NIE letter does not match its digits; a digit may be mistyped")
    return number


@dataclass(frozen=True)
class IdNumberRule:
    """One country's ID-number format: what it is called and how to validate it."""

    name: str
    validate: Callable[[str], str]  # compact number -> normal form, or raises CheckFailed
    check_digits: bool  # whether a check digit protects against a mistyped digit


# ISO 3166-1 alpha-2 -> rule; add a country here (and a test) to support it
ID_NUMBER_RULES: dict[str, IdNumberRule] = {
    "BR": IdNumberRule("CPF", _validate_br, check_digits=True),
    "CA": IdNumberRule("Social Insurance Number", _validate_ca, check_digits=True),
    "ES": IdNumberRule("DNI/NIE", _validate_es, check_digits=True),
    "GB": IdNumberRule("National Insurance number", _validate_gb, check_digits=False),
    "IN": IdNumberRule("Aadhaar number", _validate_in, check_digits=True),
    "US": IdNumberRule("Social Security number", _validate_us, check_digits=False),
}


def _country(country: object) -> str:
    if not isinstance(country, str):
        raise _invalid(f"an ID number's country must be text, not {type(country).__name__}")
    code = country.strip().upper()
    if code not in ID_NUMBER_RULES:
        hint = " (use 'GB' for the United Kingdom)" if code == "UK" else ""
        raise _invalid(
            f"ID numbers from country {country!r} cannot be checked{hint}; "
            f"supported countries: {', '.join(sorted(ID_NUMBER_RULES))}"
        )
    return code


def validate_id_number(country: str, number: str) -> str:
    """Check ``number`` against ``country``'s format rule and return its normal form.

    The normal form is the compact number: upper case, without the spaces, dashes, dots or
    slashes people type inside it. Raises :class:`CheckFailed` with ``id_number_invalid``
    (and a reason that names the rule broken) for a malformed number or an unsupported
    country; never anything else, whatever the input.
    """
    code = _country(country)
    compact = _compact(number)
    if not compact:
        raise _invalid("the ID number is empty")
    return ID_NUMBER_RULES[code].validate(compact)


# --- the reference source ----------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRecord:
    """What a reference source holds for an ID number."""

    name: str  # "Given Names Surname"
    birth_date: date


class ReferenceSource(Protocol):
    """Where ID numbers are looked up: a registry, a bureau, or :class:`MemoryReferenceSource`.

    ``lookup`` is given the ISO 3166-1 alpha-2 country and the number in the normal form of
    :func:`validate_id_number`, and returns the record or ``None`` when it holds no such number.
    """

    def lookup(self, country: str, id_number: str) -> ReferenceRecord | None: ...


class MemoryReferenceSource:
    """A reference source held in a dict, for tests, demos and the CLI.

    >>> source = MemoryReferenceSource()
    >>> source.add("US", "123-45-6789", "Jane Q Public", date(1990, 5, 17))
    >>> source.lookup("US", "123456789")
    ReferenceRecord(name='Jane Q Public', birth_date=datetime.date(1990, 5, 17))
    """

    def __init__(self, records: Mapping[tuple[str, str], ReferenceRecord] | None = None):
        self._records: dict[tuple[str, str], ReferenceRecord] = {}
        for (country, number), record in (records or {}).items():
            self._records[self._key(country, number)] = record

    @staticmethod
    def _key(country: str, number: str) -> tuple[str, str]:
        # numbers are stored in normal form, so "123-45-6789" and "123456789" are one entry;
        # an invalid number raises CheckFailed here, the place it was put in
        return country.strip().upper(), validate_id_number(country, number)

    def add(self, country: str, id_number: str, name: str, birth_date: date) -> None:
        """Hold ``name`` and ``birth_date`` for ``id_number`` (which must be valid)."""
        self._records[self._key(country, id_number)] = ReferenceRecord(name, birth_date)

    def lookup(self, country: str, id_number: str) -> ReferenceRecord | None:
        try:
            key = self._key(country, id_number)
        except CheckFailed:
            return None
        return self._records.get(key)

    def __len__(self) -> int:
        return len(self._records)


# --- names -------------------------------------------------------------------------------


def name_tokens(name: str) -> list[str]:
    """A name as comparable words: accents dropped, case folded, apostrophes removed,
    hyphens and other punctuation read as spaces.

    >>> name_tokens("  José-María  O'Brien ")
    ['jose', 'maria', 'obrien']
    """
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = re.sub(r"['’`´]", "", plain)
    return re.sub(r"[^\w]+|_", " ", plain).split()


def _given_names_fit(fewer: list[str], more: list[str]) -> bool:
    # every given name on the shorter side has its own partner on the longer side, in any
    # order; a single letter is an initial and partners any name that starts with it
    remaining = list(more)
    for token in sorted(fewer, key=len, reverse=True):
        partner = next(
            (
                other
                for other in remaining
                if other == token
                or (len(token) == 1 and other.startswith(token))
                or (len(other) == 1 and token.startswith(other))
            ),
            None,
        )
        if partner is None:
            return False
        remaining.remove(partner)
    return True


def names_match(a: str, b: str) -> bool:
    """Whether two "Given Names Surname" names plausibly name the same person.

    Forgiven: case, accents, punctuation, the order of the given names, a given name missing
    on one side (a middle name left out) and initials. Not forgiven: a different surname (the
    last word), no given name in common, or a typo.

    >>> names_match("JOSÉ Luis GARCÍA", "Luis Jose Garcia")
    True
    >>> names_match("John Paul Smith", "John Smith")
    True
    >>> names_match("John Smith", "Jane Smith")
    False
    """
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return False
    if ta[-1] != tb[-1]:
        return False
    given_a, given_b = ta[:-1], tb[:-1]
    if not given_a or not given_b:
        # a one-word name matches only the same one word
        return not given_a and not given_b
    fewer, more = sorted((given_a, given_b), key=len)
    return _given_names_fit(fewer, more)


# --- the check ---------------------------------------------------------------------------


def check_id_number(claimed: Claimed, reference: ReferenceSource) -> None:
    """Check the claimed ID number: valid for its country, held by ``reference`` under the
    claimed name (compared with :func:`names_match`) and birth date (exactly).

    Returns ``None`` when everything agrees. Raises :class:`CheckFailed` with
    ``id_number_invalid`` when the number (or its country) is missing or breaks the
    country's rule, and with ``id_number_mismatch`` when the claim has no name or birth date
    to compare, the source has no such number, or the name or birth date differ. The reason
    never repeats the number, the name or the date held by the source.
    """
    if not claimed.id_number:
        raise _invalid("no ID number was given")
    if not claimed.id_number_country:
        raise _invalid("the ID number's country was not given")
    number = validate_id_number(claimed.id_number_country, claimed.id_number)
    country = claimed.id_number_country.strip().upper()
    if not claimed.name or claimed.birth_date is None:
        raise CheckFailed(
            "id_number_mismatch",
            "an ID number is checked against a name and a date of birth; give both",
        )
    record = reference.lookup(country, number)
    if record is None:
        raise CheckFailed("id_number_mismatch", "the reference source holds no such ID number")
    if not names_match(claimed.name, record.name):
        raise CheckFailed(
            "id_number_mismatch", "the name does not match the one held for this ID number"
        )
    if claimed.birth_date != record.birth_date:
        raise CheckFailed(
            "id_number_mismatch",
            "the date of birth does not match the one held for this ID number",
        )
