"""The MRZ: check digits, compose and parse, and the OCR repair that must never accept a
different identity than the document's."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from vigil.identity import CheckFailed, DocumentFields
from vigil.identity._mrz import (
    ALNUM_CONFUSIONS,
    ICAO_CODES,
    LAYOUTS,
    TO_DIGIT,
    TO_LETTER,
    check_digit,
    compose_mrz,
    parse_mrz,
    read_mrz,
)

TODAY = date(2026, 1, 15)
# ICAO 9303 part 4 and 5 specimens (Utopia)
TD3 = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
       "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD1 = ("I<UTOD231458907<<<<<<<<<<<<<<<",
       "7408122F1204159UTO<<<<<<<<<<<6",
       "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
       "D231458907UTO7408122F1204159<<<<<<<6")


def specimen_fields(fmt: str) -> DocumentFields:
    return DocumentFields(
        document_type="passport" if fmt == "TD3" else "id_card", mrz_format=fmt,
        issuing_country="UTO", document_number="L898902C3" if fmt == "TD3" else "D23145890",
        surname="ERIKSSON", given_names="ANNA MARIA", nationality="UTO",
        birth_date=date(1974, 8, 12), expiry_date=date(2012, 4, 15), sex="F")


@pytest.mark.parametrize("text, digit", [("L898902C3", 6), ("740812", 2), ("120415", 9),
                                         ("D23145890", 7), ("<<<<<<<<<", 0), ("AB2134<<<", 5)])
def test_check_digit(text, digit):
    assert check_digit(text) == digit


@pytest.mark.parametrize("lines, fmt", [(TD3, "TD3"), (TD1, "TD1"), (TD2, "TD2")])
def test_specimens_parse(lines, fmt):
    assert parse_mrz(lines, today=TODAY) == specimen_fields(fmt)


@pytest.mark.parametrize("lines, fmt", [(TD3, "TD3"), (TD1, "TD1"), (TD2, "TD2")])
def test_specimens_compose(lines, fmt):
    optional = "ZE184226B" if fmt == "TD3" else ""
    assert compose_mrz(specimen_fields(fmt), mrz_format=fmt, optional_data=optional) == lines


def test_long_document_number_overflows_into_optional_data():
    fields = replace(specimen_fields("TD1"), document_number="D23145890123")
    lines = compose_mrz(fields)
    assert lines[0][14] == "<"  # the check position says: the number goes on
    assert parse_mrz(lines, today=TODAY) == fields


def test_centuries():
    # born 1974 (2074 would be in the future); expiry 2012, and 2070 stays in this century
    fields = parse_mrz(TD3, today=TODAY)
    assert fields.birth_date.year == 1974 and fields.expiry_date.year == 2012
    later = replace(specimen_fields("TD3"), expiry_date=date(2070, 1, 1))
    assert parse_mrz(compose_mrz(later, optional_data="ZE184226B"), today=TODAY) == later


def test_repair_of_class_confusions_is_counted():
    lines = (TD3[0].replace("UTO", "UT0", 1), TD3[1].replace("7408122", "74O8I22"))
    read = read_mrz(lines, today=TODAY)
    assert read.fields == replace(specimen_fields("TD3"), repaired=3)
    assert read.lines == TD3


def test_fillers_read_as_letters_and_dropped_fillers():
    lines = ("P<UTOERIKSSON<<ANNA<MARIA<<<<KCK<<<<<<<«<<", TD3[1].replace("<<<<<", "<<< <<"))
    read = read_mrz(lines, today=TODAY)
    assert read.lines == TD3 and read.fields.repaired > 0


def test_alphanumeric_confusion_repaired_by_check_digit():
    # the document number's 0 read as O: only the check digits say which is right
    lines = (TD3[0], TD3[1].replace("L898902C3", "L8989O2C3"))
    assert read_mrz(lines, today=TODAY).fields.document_number == "L898902C3"


def test_name_keeps_real_k_and_l():
    fields = replace(specimen_fields("TD3"), surname="LEE", given_names="KLAUS KC")
    lines = compose_mrz(fields, optional_data="ZE184226B")
    read = read_mrz(lines, today=TODAY)
    assert read.fields.surname == "LEE"
    assert read.name_field.startswith("LEE<<KLAUS<KC")  # the raw name, for a cross-check


@pytest.mark.parametrize("lines, line, pos", [
    (TD3, 1, 9), (TD3, 1, 19), (TD3, 1, 27), (TD3, 1, 42), (TD3, 1, 43),
    (TD1, 0, 14), (TD1, 1, 6), (TD1, 1, 14), (TD1, 1, 29),
    (TD2, 1, 9), (TD2, 1, 19), (TD2, 1, 27), (TD2, 1, 35),
])
@pytest.mark.parametrize("shift", range(1, 10))
def test_wrong_check_digit_refused(lines, line, pos, shift):
    chars = list(lines[line])
    chars[pos] = str((int(chars[pos]) + shift) % 10)
    bad = tuple("".join(chars) if i == line else text for i, text in enumerate(lines))
    with pytest.raises(CheckFailed) as info:
        read_mrz(bad, today=TODAY)
    assert info.value.code == "document_mrz_unreadable"


def with_check_digits(td3_line2: str) -> str:
    """A TD3 second line with its birth, expiry and composite check digits recomputed."""
    c = list(td3_line2)
    c[19] = str(check_digit(td3_line2[13:19]))
    c[27] = str(check_digit(td3_line2[21:27]))
    line = "".join(c)
    return line[:43] + str(check_digit(line[0:10] + line[13:20] + line[21:43]))


@pytest.mark.parametrize("lines, message", [
    ((), "found 0 MRZ lines"),
    ((TD3[0],), "found 1 MRZ lines"),
    ((TD3[0], TD3[1][:30]), "line 2 has 30 characters, not 44"),
    ((TD3[0], with_check_digits(TD3[1].replace("740812", "741312"))), "not a calendar date"),
    (("P<UTOERIKSSON<<ANNA", TD3[1]), "line 1 has 19 characters, not 44"),
    (("9" + TD3[0][1:], TD3[1]), "none of P, I, A, C"),
])
def test_unreadable_reasons(lines, message):
    with pytest.raises(CheckFailed, match=message):
        read_mrz(lines, today=TODAY)


def test_visa_is_not_supported():
    visa = ("V" + TD3[0][1:], TD3[1])
    with pytest.raises(CheckFailed) as info:
        read_mrz(visa, today=TODAY)
    assert info.value.code == "document_type_not_supported"


# ---------------------------------------------------------------------------- properties

mrz_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<KC« O", max_size=50)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.text(max_size=60), max_size=4),
                 st.lists(mrz_text, min_size=2, max_size=3)))
def test_parser_only_ever_raises_check_failed(lines):
    try:
        read_mrz(lines, today=TODAY)
    except CheckFailed as exc:
        assert exc.code in ("document_mrz_unreadable", "document_type_not_supported")


NAME_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
COUNTRIES = sorted(ICAO_CODES)


def _name(rng: random.Random, parts: int, width: int) -> str:
    words = []
    for _ in range(parts):
        word = "".join(rng.choice(NAME_LETTERS) for _ in range(rng.randint(2, 8)))
        words.append(word)
    # no name part of K and C alone, since the parser reads "<KC<" as fillers
    return " ".join(w for w in " ".join(words)[:width].split() if set(w) - set("KC"))


def random_fields(rng: random.Random, fmt: str) -> DocumentFields:
    """Fields that fit the format, so that composing and parsing gives them back."""
    length = rng.choice([9, 9, 9, 7] + ([12, 14] if fmt != "TD3" else []))
    number = "".join(rng.choice(NAME_LETTERS + "0123456789") for _ in range(length))
    birth = TODAY - timedelta(days=rng.randint(0, 36000))
    expiry = None if rng.random() < 0.05 else TODAY + timedelta(days=rng.randint(-4000, 4000))
    surname = _name(rng, rng.randint(1, 2), 12)
    given = _name(rng, rng.randint(0, 2), 12)
    return DocumentFields(
        document_type="passport" if fmt == "TD3" else "id_card", mrz_format=fmt,
        issuing_country=rng.choice(COUNTRIES), document_number=number, surname=surname,
        given_names=given, nationality=rng.choice(COUNTRIES), birth_date=birth,
        expiry_date=expiry, sex=rng.choice("MFX"))


def random_optional(rng: random.Random, fmt: str, number: str) -> str:
    room = {"TD3": 14, "TD2": 7, "TD1": 15}[fmt] - (len(number) - 8 if len(number) > 9 else 0)
    if rng.random() < 0.5 or room < 2:
        return ""
    # not opening with K or C: after a long number's "<", "<K<" would read as fillers
    return "".join(rng.choice(NAME_LETTERS.replace("K", "").replace("C", "") + "0123456789")
                   for _ in range(rng.randint(1, min(room - 1, 10))))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["TD1", "TD2", "TD3"]))
def test_compose_parse_round_trip(seed, fmt):
    rng = random.Random(seed)
    fields = random_fields(rng, fmt)
    lines = compose_mrz(fields, mrz_format=fmt,
                        optional_data=random_optional(rng, fmt, fields.document_number))
    assert [len(line) for line in lines] == {"TD1": [30] * 3, "TD2": [36] * 2,
                                            "TD3": [44] * 2}[fmt]
    read = read_mrz(lines, today=TODAY)
    assert read.fields == fields
    assert read.lines == lines


def _kinds(fmt: str) -> dict[tuple[int, int], str]:
    out = {}
    for _name, kind, line, start, length in LAYOUTS[fmt]:
        for i in range(start, start + length):
            out[(line, i)] = kind
    return out


def corrupt(lines: tuple[str, ...], fmt: str, rng: random.Random, rate: float) -> list[str]:
    """OCR-like damage that a correct repair can always undo or must refuse:

    - numeric positions: a digit read as a letter that looks like it;
    - alphabetic positions: a letter read as a digit that looks like it;
    - a filler between fillers read as K, C or «;
    - at most one alphanumeric confusion (ALNUM_CONFUSIONS) in the whole MRZ;
    - fillers dropped or added at the end of the name.
    """
    kinds = _kinds(fmt)
    to_letters = {d: [c for c, v in TO_DIGIT.items() if v == d] for d in "0123456789"}
    to_digits = {c: [d for d, v in TO_LETTER.items() if v == c] for c in NAME_LETTERS}
    alnum_left = 1
    out = []
    for li, line in enumerate(lines):
        chars = list(line)
        for i, ch in enumerate(line):
            if rng.random() > rate:
                continue
            kind = kinds[(li, i)]
            right = line[i + 1] if i + 1 < len(line) else "<"
            if ch == "<" and i > 0 and line[i - 1] == "<" and right == "<":
                chars[i] = rng.choice("KC«")
            elif kind in ("date", "check") and ch.isdigit() and to_letters[ch]:
                chars[i] = rng.choice(to_letters[ch])
            elif kind in ("country", "name", "sex") and to_digits.get(ch):
                chars[i] = rng.choice(to_digits[ch])
            elif kind == "alnum" and ch in ALNUM_CONFUSIONS and alnum_left:
                chars[i] = rng.choice(ALNUM_CONFUSIONS[ch])
                alnum_left -= 1
        text = "".join(chars)
        name_line = next(s[2] for s in LAYOUTS[fmt] if s[0] == "name")
        if li == name_line and text.endswith("<<<<") and rng.random() < 0.3:
            text = text[:-rng.randint(1, 3)] if rng.random() < 0.5 else text + "<" * 2
        out.append(text)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.sampled_from(["TD1", "TD2", "TD3"]),
       st.floats(0.02, 0.3))
def test_corruptions_repaired_to_the_truth_or_refused(seed, fmt, rate):
    rng = random.Random(seed)
    fields = random_fields(rng, fmt)
    lines = compose_mrz(fields, mrz_format=fmt,
                        optional_data=random_optional(rng, fmt, fields.document_number))
    damaged = corrupt(lines, fmt, rng, rate)
    assume(tuple(damaged) != lines)
    try:
        read = read_mrz(damaged, today=TODAY)
    except CheckFailed as exc:
        assert exc.code == "document_mrz_unreadable"
        return
    assert replace(read.fields, repaired=0) == fields  # never a different identity
    assert read.lines == lines
    assert read.fields.repaired > 0


def test_a_filler_inside_a_document_number_is_never_accepted():
    """K and ``<`` weigh the same in a check digit (20 and 0), so a number read as
    ``<E2240143`` passes the digit that ``KE2240143`` carries: the number's shape refuses it."""
    from vigil.identity._mrz import check_blind_positions

    lines = ("P<CHEKUMAR<<KONSTANTINOS<<<<<<<<<<<<<<<<<<<<",
             "KE22401432CHE9403039F3310089<<<<<<<<<<<<<<<4")
    assert read_mrz(lines, today=TODAY).fields.document_number == "KE2240143"
    for bad in ("<E22401432", "KE22<01432"):
        try:
            read = read_mrz((lines[0], bad + lines[1][10:]), today=TODAY)
        except CheckFailed as exc:
            assert exc.code == "document_mrz_unreadable"
        else:
            assert "<" not in read.fields.document_number
    blind = check_blind_positions("TD3")
    assert blind[0] == frozenset() and set(range(9)) <= blind[1] and 9 not in blind[1]
    assert set(range(28, 42)) <= blind[1]


def test_a_country_code_of_k_and_c_is_not_taken_for_fillers():
    lines = ("I<NAMVIVJS1QD7<RXG2<<<<<<<<<<<", "6009049M<<<<<<<CCK<<<<<<<<<<<0",
             "XP<<AKVPBAH<<<<<<<<<<<<<<<<<<<")
    read = read_mrz(lines, today=TODAY)
    assert read.fields.nationality == "CCK" and read.fields.document_number == "VIVJS1QD7RXG"


def test_the_optional_data_ends_at_its_first_filler():
    from vigil.identity._mrz import optional_filler_runs

    td3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
           "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
    assert optional_filler_runs("TD3", td3) == [frozenset(), frozenset(range(38, 42))]
    # a long TD1 number: its overflow (734) and check digit (9) open the optional data
    td1 = ["I<UTOD23145890<7349<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6",
           "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
    runs = optional_filler_runs("TD1", td1)
    assert runs[0] == frozenset(range(20, 30)) and runs[1] == frozenset(range(19, 29))
    assert runs[2] == frozenset()
    full = ["I<UTOD23145890<7349KKKK1234567", *td1[1:]]  # no filler: all data
    assert optional_filler_runs("TD1", full)[0] == frozenset()
