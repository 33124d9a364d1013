"""Synthetic identity documents for tests and benchmarks: a TD3 passport data page and a TD1
identity card (front and back), their MRZ in OCR-B, a scan or phone-photo look at named
levels, and forged variants -- every one deterministic from a seed.

No real document is imitated: the layout is generic, the issuing state is drawn from real
ICAO codes and Utopia (``UTO``, ICAO's specimen state), and the people are made up.

>>> doc = generate_document(7, kind="id_card", level="mild")  # doctest: +SKIP
>>> doc.truth.fields == parse_mrz(doc.mrz_lines, today=date(2026, 1, 15))  # doctest: +SKIP
True
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vigil.identity._mrz import compose_mrz, parse_mrz
from vigil.identity._mrz_glyphs import OCR_B_FONT
from vigil.identity._types import DocumentFields

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

LEVELS = ("clean", "mild", "moderate", "severe")
FORGERIES = ("wrong_check_digit", "altered_date", "pasted_portrait", "printed_mismatch")
# issuing states drawn for documents: a spread of real ICAO codes, Germany's "D" among them,
# and the specimen state Utopia
COUNTRIES = ("UTO", "UTO", "D", "FRA", "GBR", "USA", "NLD", "ITA", "ESP", "POL", "SWE",
             "CAN", "AUS", "JPN", "BRA", "IND", "NGA", "KEN", "ZAF", "MEX", "IRL", "CHE")
SURNAMES = ("ERIKSSON", "KOWALSKI", "NAKAMURA", "OKONKWO", "SMITH", "MUELLER", "GARCIA",
            "DUBOIS", "ROSSI", "KIM", "KUMAR", "VAN DER BERG", "O'BRIEN", "BECKER", "KLEIN",
            "NOWAK", "LINDQVIST", "KARLSSON", "MACKENZIE", "DOS SANTOS", "ABERNATHY-KINGSLEY",
            "WOLFESCHLEGELSTEINHAUSENBERGERDORFF", "PAPADOPOULOS", "HAKKINEN", "ZIELINSKI")
GIVEN_NAMES = ("ANNA", "MARIA", "KARL", "KATJA", "FRANK", "ERIK", "NIKOLAI", "JOHN", "LUCIA",
               "AKIKO", "CHIDI", "PRIYA", "JACK", "KEVIN", "SOFIA", "MIKAEL", "KLAUS", "ZOE",
               "OLIVER", "BEATRIX", "KONSTANTINOS", "ALEXANDRA", "DOMINIK", "LEILA", "ISAAC")

# what each degradation level does; see :func:`degrade`
LEVEL_SETTINGS: dict[str, dict[str, float]] = {
    "clean": dict(rotate=0.0, blur=0.0, noise=0.0, light=0.0, jpeg=0, scale=1.0),
    "mild": dict(rotate=0.8, blur=0.6, noise=4.0, light=0.12, jpeg=85, scale=1.0),
    "moderate": dict(rotate=2.0, blur=1.0, noise=8.0, light=0.25, jpeg=65, scale=0.85),
    "severe": dict(rotate=4.0, blur=1.5, noise=14.0, light=0.4, jpeg=40, scale=0.7),
}


@dataclass(frozen=True)
class DocumentTruth:
    """What a generated document says: the MRZ's fields and the printed page.

    ``fields`` hold the names as the MRZ encodes them (truncated to fit); ``surname`` and
    ``given_names`` are the full names printed on the page. ``printed`` maps each printed
    label to its text. ``forgery`` names the forged variant (None: genuine), and
    ``pasted_portrait`` says the portrait is another person's face pasted in.
    """

    fields: DocumentFields
    surname: str
    given_names: str
    printed: dict[str, str]
    personal_number: str = ""
    forgery: str | None = None
    pasted_portrait: bool = False


@dataclass
class GeneratedDocument:
    """A generated document: ``front`` (a passport's data page, with its MRZ, or an ID card's
    front), ``back`` (the ID card's back with its MRZ; None for a passport), what it encodes
    (``truth``) and the MRZ lines as printed (``mrz_lines``, forgeries included)."""

    front: Image.Image
    back: Image.Image | None
    truth: DocumentTruth
    mrz_lines: tuple[str, ...]
    level: str = "clean"
    seed: int = 0
    extras: dict = field(default_factory=dict)

    def image_bytes(self, fmt: str = "PNG") -> tuple[bytes, bytes | None]:
        """The front and back as image files (``PNG`` or ``JPEG``), as a user would upload."""
        return _to_bytes(self.front, fmt), (_to_bytes(self.back, fmt) if self.back else None)


def _to_bytes(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _font(size: int, *, bold: bool = False, mrz: bool = False) -> ImageFont.FreeTypeFont:
    if mrz:
        return ImageFont.truetype(str(OCR_B_FONT), size)
    regular = _DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return ImageFont.truetype(str(regular if regular.exists() else OCR_B_FONT), size)


def printed_date(day: date | None) -> str:
    """How the generated documents print a date: ``DD.MM.YYYY`` (``-`` for none)."""
    return "-" if day is None else day.strftime("%d.%m.%Y")


def _random_number(rng: random.Random) -> str:
    letters = "ABCDEFHJKLMNPRTUVWXYZ"
    style = rng.random()
    if style < 0.4:  # one or two letters, then digits
        head = "".join(rng.choice(letters) for _ in range(rng.choice((1, 2))))
        return head + "".join(rng.choice("0123456789") for _ in range(9 - len(head)))
    if style < 0.7:  # digits only
        return "".join(rng.choice("0123456789") for _ in range(9))
    return "".join(rng.choice(letters + "0123456789") for _ in range(9))  # mixed


def random_identity(rng: random.Random, kind: str, today: date) -> tuple[DocumentFields, str]:
    """A made-up holder and document (full names, not yet truncated) and a personal number."""
    birth = today - timedelta(days=rng.randint(18 * 365 + 5, 85 * 365))
    issued = today - timedelta(days=rng.randint(30, 9 * 365))
    expiry = issued.replace(year=issued.year + 10) if issued.month != 2 or issued.day != 29 \
        else issued + timedelta(days=3652)
    given = rng.choice(GIVEN_NAMES)
    if rng.random() < 0.35:
        given += " " + rng.choice(GIVEN_NAMES)
    country = rng.choice(COUNTRIES)
    fields = DocumentFields(
        document_type=kind, mrz_format="TD3" if kind == "passport" else "TD1",
        issuing_country=country, document_number=_random_number(rng),
        surname=rng.choice(SURNAMES), given_names=given,
        nationality=country if rng.random() < 0.85 else rng.choice(COUNTRIES),
        birth_date=birth, expiry_date=expiry, sex=rng.choice("MMFFX"))
    personal = ""
    if kind == "passport" and rng.random() < 0.5:
        personal = "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 14)))
    return fields, personal


def _placeholder_portrait(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (222, 226, 230))
    draw = ImageDraw.Draw(img)
    tone = tuple(rng.randint(90, 200) for _ in range(3))
    draw.ellipse((w * 0.3, h * 0.15, w * 0.7, h * 0.6), fill=tone)
    draw.rounded_rectangle((w * 0.12, h * 0.62, w * 0.88, h * 1.1), radius=int(w * 0.2),
                           fill=tuple(max(0, c - 60) for c in tone))
    return img


def _fit(portrait: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Crop the portrait to the slot's aspect ratio around its centre, then resize."""
    img = portrait.convert("RGB")
    w, h = img.size
    target = size[0] / size[1]
    if w / h > target:
        nw = int(h * target)
        img = img.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    else:
        nh = int(w / target)
        img = img.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))
    return img.resize(size, Image.Resampling.LANCZOS)


def _background(rng: random.Random, size: tuple[int, int], tint: tuple[int, int, int]):
    img = Image.new("RGB", size, tint)
    draw = ImageDraw.Draw(img)
    # guilloche-like fine waves: a security background the OCR has to ignore
    w, h = size
    phase = rng.random() * 6.28
    for k in range(0, h, 14):
        pts = [(x, k + 5 * np.sin(x / 37 + phase + k / 50)) for x in range(0, w, 8)]
        draw.line(pts, fill=tuple(max(0, c - 18) for c in tint), width=1)
    return img


def _draw_fields(draw: ImageDraw.ImageDraw, x: int, y: int, items: list[tuple[str, str]],
                 label_size: int, value_size: int, gap: int) -> None:
    label_font, value_font = _font(label_size), _font(value_size, bold=True)
    for label, value in items:
        draw.text((x, y), label, font=label_font, fill=(70, 70, 90))
        draw.text((x, y + label_size + 3), value, font=value_font, fill=(15, 15, 25))
        y += gap


def _draw_mrz(img: Image.Image, lines: tuple[str, ...], top: int, size: int) -> None:
    draw = ImageDraw.Draw(img)
    font = _font(size, mrz=True)
    width = img.size[0]
    for i, line in enumerate(lines):
        text_w = draw.textlength(line, font=font)
        draw.text(((width - text_w) / 2, top + i * int(size * 1.45)), line, font=font,
                  fill=(10, 10, 10))


def _render_passport(fields, truth_names, personal, mrz, portrait, rng) -> Image.Image:
    size = (1000, 704)  # ID-3 (125 x 88 mm) at 8 px/mm
    img = _background(rng, size, (236, 229, 214))
    draw = ImageDraw.Draw(img)
    draw.text((40, 22), "PASSPORT", font=_font(30, bold=True), fill=(60, 40, 90))
    draw.text((300, 30), f"ISSUING STATE {fields.issuing_country}", font=_font(20),
              fill=(60, 40, 90))
    img.paste(_fit(portrait, (230, 290)), (40, 90))
    surname, given = truth_names
    items = [("Type / Code", f"P   {fields.issuing_country}"),
             ("Passport No.", fields.document_number),
             ("Surname", surname), ("Given names", given),
             ("Nationality", fields.nationality),
             ("Date of birth", printed_date(fields.birth_date)),
             ("Sex", fields.sex),
             ("Date of expiry", printed_date(fields.expiry_date))]
    _draw_fields(draw, 300, 70, items[:4], 15, 24, 52)
    _draw_fields(draw, 300, 278, items[4:6], 15, 24, 52)
    _draw_fields(draw, 640, 278, items[6:], 15, 24, 52)
    # the MRZ band: white, as on a real data page, so the band stands out from the guilloche
    draw.rectangle((0, 560, size[0], size[1]), fill=(248, 246, 240))
    _draw_mrz(img, mrz, 582, 28)
    return img


def _render_card(fields, truth_names, mrz, portrait, rng) -> tuple[Image.Image, Image.Image]:
    size = (856, 540)  # ID-1 (85.6 x 54 mm) at 10 px/mm
    front = _background(rng, size, (222, 232, 240))
    draw = ImageDraw.Draw(front)
    draw.text((30, 18), "IDENTITY CARD", font=_font(30, bold=True), fill=(30, 60, 100))
    draw.text((400, 26), f"{fields.issuing_country}", font=_font(22), fill=(30, 60, 100))
    front.paste(_fit(portrait, (230, 300)), (30, 90))
    surname, given = truth_names
    items = [("Surname", surname), ("Given names", given),
             ("Date of birth", printed_date(fields.birth_date)),
             ("Document No.", fields.document_number)]
    _draw_fields(draw, 290, 80, items, 15, 24, 56)
    _draw_fields(draw, 290, 310, [("Nationality", fields.nationality)], 15, 24, 56)
    _draw_fields(draw, 480, 310, [("Sex", fields.sex)], 15, 24, 56)
    _draw_fields(draw, 290, 366, [("Date of expiry", printed_date(fields.expiry_date))],
                 15, 24, 56)
    back = _background(rng, size, (230, 236, 240))
    bdraw = ImageDraw.Draw(back)
    bdraw.text((30, 30), "Authority", font=_font(15), fill=(70, 70, 90))
    bdraw.text((30, 50), f"{fields.issuing_country} CIVIL REGISTRY", font=_font(22, bold=True),
               fill=(15, 15, 25))
    bdraw.rectangle((0, 320, size[0], size[1]), fill=(246, 247, 248))
    _draw_mrz(back, mrz, 350, 36)
    return front, back


def _paste_face(front: Image.Image, face: Image.Image | None, box, rng) -> None:
    """Paste another face over part of the portrait, a little off, as a forger would."""
    x, y, w, h = box
    dx, dy = rng.randint(-6, 6), rng.randint(-6, 6)
    slot = (int(w * 0.9), int(h * 0.85))
    patch = _fit(face, slot) if face is not None else _placeholder_portrait(rng, slot)
    front.paste(patch, (x + (w - slot[0]) // 2 + dx, y + 10 + dy))


def generate_document(seed: int, *, kind: str = "passport", level: str = "clean",
                      forgery: str | None = None, portrait: Image.Image | None = None,
                      pasted_face: Image.Image | None = None, country: str | None = None,
                      today: date = date(2026, 1, 15)) -> GeneratedDocument:
    """A made-up document, the same for the same arguments.

    ``kind`` is ``passport`` (TD3 data page) or ``id_card`` (TD1 front and back); ``level``
    one of :data:`LEVELS` (see :data:`LEVEL_SETTINGS`); ``forgery`` one of :data:`FORGERIES`:

    - ``wrong_check_digit``: the document number's check digit is off by one;
    - ``altered_date``: the birth date is three years earlier, printed and in the MRZ, with
      the MRZ's check digits left as they were;
    - ``pasted_portrait``: ``pasted_face`` (or a drawn face) is pasted over the portrait;
    - ``printed_mismatch``: the printed birth date differs from the (intact) MRZ.

    ``portrait`` fills the portrait slot (a plain drawn placeholder when None); ``country``
    overrides the issuing state and nationality (any three letters, e.g. an unknown one).
    """
    if kind not in ("passport", "id_card"):
        raise ValueError(f"kind {kind!r} is not 'passport' or 'id_card'")
    if level not in LEVEL_SETTINGS:
        raise ValueError(f"level {level!r} is not one of {', '.join(LEVELS)}")
    if forgery is not None and forgery not in FORGERIES:
        raise ValueError(f"forgery {forgery!r} is not one of {', '.join(FORGERIES)}")
    rng = random.Random(seed)
    full, personal = random_identity(rng, kind, today)
    if country is not None:
        full = replace(full, issuing_country=country, nationality=country)
    mrz = compose_mrz(full, optional_data=personal)

    # the truth is what the MRZ says, names truncated to fit included
    fields = replace(parse_mrz(mrz, today=today), repaired=0)
    printed_fields = full
    if forgery == "wrong_check_digit":
        line = 1 if kind == "passport" else 0
        pos = 9 if kind == "passport" else 14
        chars = list(mrz[line])
        chars[pos] = str((int(chars[pos]) + 1) % 10)
        mrz = tuple("".join(chars) if i == line else m for i, m in enumerate(mrz))
    elif forgery in ("altered_date", "printed_mismatch"):
        older = full.birth_date.replace(year=full.birth_date.year - 3) \
            if (full.birth_date.month, full.birth_date.day) != (2, 29) \
            else full.birth_date - timedelta(days=3 * 365)
        printed_fields = replace(full, birth_date=older)
        if forgery == "altered_date":
            line, start = (1, 13) if kind == "passport" else (1, 0)
            chars = list(mrz[line])
            chars[start:start + 6] = older.strftime("%y%m%d")
            mrz = tuple("".join(chars) if i == line else m for i, m in enumerate(mrz))
    portrait_img = portrait if portrait is not None else _placeholder_portrait(rng, (230, 300))
    names = (full.surname, full.given_names)
    if kind == "passport":
        front = _render_passport(printed_fields, names, personal, mrz, portrait_img, rng)
        back, box = None, (40, 90, 230, 290)
    else:
        front, back = _render_card(printed_fields, names, mrz, portrait_img, rng)
        box = (30, 90, 230, 300)
    if forgery == "pasted_portrait":
        _paste_face(front, pasted_face, box, rng)
    printed = {"document_number": printed_fields.document_number,
               "surname": full.surname, "given_names": full.given_names,
               "birth_date": printed_date(printed_fields.birth_date),
               "expiry_date": printed_date(printed_fields.expiry_date),
               "nationality": full.nationality, "sex": full.sex}
    truth = DocumentTruth(fields=fields, surname=full.surname, given_names=full.given_names,
                          printed=printed, personal_number=personal, forgery=forgery,
                          pasted_portrait=forgery == "pasted_portrait")
    noise_rng = np.random.default_rng(seed)
    front = degrade(front, level, noise_rng)
    back = degrade(back, level, noise_rng) if back is not None else None
    return GeneratedDocument(front=front, back=back, truth=truth, mrz_lines=mrz, level=level,
                             seed=seed)


def degrade(image: Image.Image, level: str, rng: np.random.Generator) -> Image.Image:
    """A scan or phone-photo look, by level (:data:`LEVEL_SETTINGS`), in this order:

    1. ``scale``: resize to that fraction (a lower-resolution capture);
    2. ``rotate``: rotate by a uniform angle in +-that many degrees, white corners;
    3. ``light``: a linear brightness gradient across the image, darkening one side by up to
       that fraction (uneven light);
    4. ``blur``: Gaussian blur of that radius in pixels (focus, motion);
    5. ``noise``: Gaussian noise of that standard deviation in 8-bit levels (sensor);
    6. ``jpeg``: JPEG compression at that quality (0: none).

    ``clean`` returns the image unchanged.
    """
    s = LEVEL_SETTINGS[level]
    if level == "clean":
        return image
    img = image.convert("RGB")
    if s["scale"] != 1.0:
        img = img.resize((int(img.width * s["scale"]), int(img.height * s["scale"])),
                         Image.Resampling.BILINEAR)
    angle = float(rng.uniform(-s["rotate"], s["rotate"]))
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True,
                     fillcolor=(255, 255, 255))
    arr = np.asarray(img).astype(np.float32)
    h, w = arr.shape[:2]
    direction = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (np.cos(direction) * xx / w + np.sin(direction) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    arr *= (1.0 - s["light"] * ramp)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if s["blur"]:
        img = img.filter(ImageFilter.GaussianBlur(s["blur"]))
    arr = np.asarray(img).astype(np.float32)
    arr += rng.normal(0, s["noise"], arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if s["jpeg"]:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(s["jpeg"]))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img
