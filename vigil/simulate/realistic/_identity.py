"""Who the people of the realistic world are: names, dates of birth, addresses, identity
documents and faces, and what a verification vendor reads from them.

A person's face is a random unit vector of :data:`~vigil.events.FACE_EMBEDDING_DIM` floats;
every selfie of that person gives the vector plus a little noise (cosine about 0.97 between
two selfies), and two different people are near-orthogonal (cosine rarely above 0.6). The
vendor's face-match and liveness scores are drawn around what the session really was: a
genuine person with their own document, or a fraudster with a forged one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from vigil.events import FACE_EMBEDDING_DIM
from vigil.simulate.realistic import _catalog as cat
from vigil.simulate.realistic._entities import Population

FACE_NOISE = 0.03  # per dimension: a selfie's embedding = face + noise, renormalised
DAYS_PER_YEAR = 365.25


@dataclass
class Identities:
    """Each customer's identity, as numpy columns (``n_customers`` rows)."""

    name: np.ndarray  # object: "Given Surname"
    dob: np.ndarray  # int64 days since 1970-01-01
    address: np.ndarray  # object: the household's normalised postal address
    doc_type: np.ndarray  # int: index into DOCUMENT_TYPES
    doc_country: np.ndarray  # int: index into COUNTRIES
    doc_number: np.ndarray  # object
    doc_expiry: np.ndarray  # int64 days since 1970-01-01
    face: np.ndarray  # (n, FACE_EMBEDDING_DIM) float64, unit rows


def draw_identities(pop: Population, rng: np.random.Generator, start_day: int) -> Identities:
    """Identities for every customer; ``start_day`` is the run's first day (days since 1970)."""
    n = pop.n_customers
    country = pop.cust_country
    hh = pop.cust_household
    n_hh = len(pop.hh_ip)
    # most of a household share a surname (and always an address)
    hh_surname = rng.integers(0, 12, size=n_hh)
    own = rng.random(n) < 0.25
    surname_idx = np.where(own, rng.integers(0, 12, size=n), hh_surname[hh])
    given = rng.integers(0, len(cat.GIVEN_NAMES), size=n)
    name = np.array([f"{cat.GIVEN_NAMES[g]} {cat.SURNAMES[c][s]}" for g, c, s in
                     zip(given.tolist(), country.tolist(), surname_idx.tolist(), strict=True)],
                    dtype=object)
    age_days = (rng.uniform(18.0, 85.0, size=n) * DAYS_PER_YEAR).astype(np.int64)
    # old enough to have signed up as an adult
    age_days = np.maximum(age_days, int(18 * DAYS_PER_YEAR) - pop.cust_signup_day + 30)
    dob = start_day - age_days
    hh_country = np.zeros(n_hh, dtype=np.int64)
    hh_country[hh] = country
    address = postal_addresses(rng, hh_country)[hh]
    doc_type = rng.choice(len(cat.DOCUMENT_YEARS), size=n, p=cat.DOCUMENT_TYPE_WEIGHTS)
    # a few live abroad with their home country's document
    foreign = rng.random(n) < 0.05
    doc_country = np.where(foreign, rng.integers(0, cat.N_HOME, size=n), country)
    # issued some time in its validity; about 1% have just run out
    years = cat.DOCUMENT_YEARS[doc_type]
    left = rng.uniform(-0.01, 1.0, size=n) * years * DAYS_PER_YEAR
    doc_expiry = start_day + left.astype(np.int64)
    return Identities(name=name, dob=dob, address=address, doc_type=doc_type,
                      doc_country=doc_country, doc_number=document_numbers(rng, n),
                      doc_expiry=doc_expiry, face=new_faces(rng, n))


def documents_at(ident: Identities, person: np.ndarray, day: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The number and expiry of the document each person held on ``day`` (days since 1970).

    Documents are renewed when they run out, each with a new number; one that ran out before
    the run is shown as it is (a few people do try).
    """
    validity = (cat.DOCUMENT_YEARS[ident.doc_type[person]] * DAYS_PER_YEAR).astype(np.int64)
    expiry = ident.doc_expiry[person]
    renewals = np.maximum((expiry - day) // validity, 0)
    number = ident.doc_number[person].copy()
    for i in np.flatnonzero(renewals).tolist():  # an earlier document: an earlier number
        text = number[i]
        number[i] = f"{text[:2]}{(int(text[2:]) + 7919 * int(renewals[i])) % 10_000_000:07d}"
    return number, expiry - renewals * validity


def postal_addresses(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """A normalised postal address in each of ``country`` (object array of text)."""
    n = len(country)
    street = rng.integers(0, len(cat.STREETS), size=n)
    number = rng.integers(1, 200, size=n)
    postcode = rng.integers(10_000, 99_999, size=n)
    return np.array([f"{cat.COUNTRIES[c]}|{p}|{cat.STREETS[s]}|{k}" for c, p, s, k in zip(
        country.tolist(), postcode.tolist(), street.tolist(), number.tolist(), strict=True)],
        dtype=object)


def document_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random document numbers: two letters and seven digits."""
    letters = np.array(list(cat.DOCUMENT_LETTERS))
    head = letters[rng.integers(0, len(letters), size=(n, 2))]
    digits = rng.integers(0, 10_000_000, size=n)
    return np.array([f"{a}{b}{d:07d}" for (a, b), d in zip(head.tolist(), digits.tolist(),
                                                            strict=True)], dtype=object)


def new_faces(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` people's faces: random unit vectors."""
    return _unit(rng.standard_normal((n, FACE_EMBEDDING_DIM)))


def selfies(rng: np.random.Generator, faces: np.ndarray) -> np.ndarray:
    """The embedding of one selfie of each of ``faces``: the face plus noise, unit length."""
    return _unit(faces + FACE_NOISE * rng.standard_normal(faces.shape)).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ocr(rng: np.random.Generator, names: np.ndarray, share: float) -> np.ndarray:
    """``names`` as read from a document: a share ``share`` with one letter misread."""
    out = names.copy()
    for i in np.flatnonzero(rng.random(len(names)) < share).tolist():
        text = out[i]
        pos = int(rng.integers(0, len(text)))
        if text[pos] != " ":
            out[i] = text[:pos] + "lIO0rn"[int(rng.integers(0, 6))] + text[pos + 1:]
    return out


def genuine_scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Face-match and liveness scores of genuine sessions: high, with rare failures (a dark
    room, a worn photo, a shaky hand)."""
    face = np.where(rng.random(n) < 0.02, rng.beta(4.0, 4.0, size=n), rng.beta(30.0, 2.0, size=n))
    live = np.where(rng.random(n) < 0.015, rng.beta(2.0, 5.0, size=n),
                    rng.beta(20.0, 1.2, size=n))
    return face, live


def sha256_hex(values: np.ndarray) -> list[str | None]:
    """SHA-256 of each text (hex), ``None`` for ``None``; equal texts are hashed once."""
    cache: dict[str, str] = {}
    out: list[str | None] = []
    for v in values.tolist():
        if v is None:
            out.append(None)
            continue
        h = cache.get(v)
        if h is None:
            h = cache[v] = hashlib.sha256(v.encode()).hexdigest()
        out.append(h)
    return out
