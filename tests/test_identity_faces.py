"""The selfie check on the shared photographs (../shared/data/faces): who matches whom, each
quality failure with its code, image decoding, and the embedding's contract."""

from __future__ import annotations

import functools
import io
import itertools
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_support import require_faces, require_modules

from vigil._errors import DataError
from vigil.identity import CheckFailed, FaceMatch
from vigil.identity._images import ImageError, load_rgb


@pytest.fixture(scope="module")
def faces_dir():
    require_modules("dlib", "face_recognition_models")
    return require_faces()


@pytest.fixture(scope="module")
def model(faces_dir):
    from vigil.identity._faces import FaceModel

    return FaceModel()  # loaded once for the module, on first use


def photo(faces_dir, name: str, max_side: int | None = None) -> np.ndarray:
    """A shared photograph as RGB, shrunk so its longer side is at most ``max_side``."""
    from PIL import Image

    img = Image.fromarray(load_rgb((faces_dir / name).read_bytes()))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clean_embeddings(faces_dir, model):
    """(person, embedding) for every shared photograph, at full size."""
    out = []
    for path in sorted(faces_dir.glob("[!_]*/*.*")):
        if path.suffix.lower() not in (".jpg", ".png"):
            continue
        rgb = load_rgb(path.read_bytes())
        out.append((path.parent.name, model.embed(rgb, model.detect(rgb)[0])))
    return out


# -- matching ------------------------------------------------------------------------------


def test_same_person_matches(faces_dir, model):
    result = model.check_selfie(png_bytes(photo(faces_dir, "barack_obama/1.jpg", 800)),
                                photo(faces_dir, "barack_obama/3.jpg", 800))
    assert isinstance(result, FaceMatch)
    assert result.same_person
    assert result.distance < result.threshold == model.threshold
    assert result.document_embedding.shape == result.selfie_embedding.shape == (128,)


def test_module_level_check_uses_the_shared_model(faces_dir, model):
    from vigil.identity._faces import check_selfie, default_model

    assert default_model() is default_model()
    document = photo(faces_dir, "joe_biden/1.jpg", 700)
    assert check_selfie(document, photo(faces_dir, "joe_biden/2.jpg", 700), model=model).same_person


def test_different_people_do_not_match(faces_dir, model):
    document = photo(faces_dir, "barack_obama/1.jpg", 800)
    selfie = photo(faces_dir, "joe_biden/2.jpg", 800)
    result = model.match(document, selfie)
    assert not result.same_person and result.distance >= model.threshold
    with pytest.raises(CheckFailed) as failed:
        model.check_selfie(document, selfie)
    assert failed.value.code == "selfie_face_mismatch"
    assert f"{result.distance:.2f}" in failed.value.reason


def test_threshold_separates_every_clean_pair(clean_embeddings):
    from vigil.identity._faces import MATCH_THRESHOLD

    assert len(clean_embeddings) == 18
    wrong = []
    for (a, ea), (b, eb) in itertools.combinations(clean_embeddings, 2):
        distance = float(np.linalg.norm(ea - eb))
        if (distance < MATCH_THRESHOLD) != (a == b):
            wrong.append((a, b, round(distance, 3)))
    assert wrong == []


def test_portrait_in_a_small_document_slot_still_matches(faces_dir, model):
    from vigil.bench._identity_faces import portrait_card

    source = photo(faces_dir, "barack_obama/2.jpg")
    card = portrait_card(source, model.detect(source)[0], np.random.default_rng(0))
    portrait = model.document_face(card)
    left, top, right, bottom = portrait.box  # the slot is at (50, 170)-(230, 400)
    assert left >= 50 and right <= 230 and top >= 170 and bottom <= 400
    assert model.check_selfie(card, photo(faces_dir, "barack_obama/4.jpg", 800)).same_person


def test_document_portrait_is_the_largest_face_not_its_ghost(faces_dir, model):
    from PIL import Image

    head = Image.fromarray(photo(faces_dir, "rose_leslie/2.jpg", 400))
    card = Image.new("RGB", (1000, 640), (225, 230, 215))
    card.paste(head.resize((260, 400)), (40, 160))
    card.paste(head.resize((130, 200)).convert("L").convert("RGB"), (760, 300))  # the ghost
    faces = model.detect(np.asarray(card))
    assert len(faces) == 2  # both are seen ...
    assert model.document_face(np.asarray(card)).box[0] < 300  # ... the portrait is chosen


# -- quality failures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["_several/1.jpg", "_several/2.jpg", "_several/3.jpg"])
def test_several_faces_in_a_selfie(faces_dir, model, name):
    with pytest.raises(CheckFailed) as failed:
        model.selfie_face(photo(faces_dir, name, 1000))
    assert failed.value.code == "selfie_multiple_faces"


@pytest.mark.parametrize("kind", ["blank", "landscape"])
def test_no_face_in_the_selfie(model, kind):
    if kind == "blank":
        image = np.full((480, 640, 3), 200, dtype=np.uint8)
    else:  # a sky gradient over a noisy field: textured, but no face
        rng = np.random.default_rng(1)
        image = np.zeros((480, 640, 3), dtype=np.uint8)
        image[:240] = np.linspace([90, 140, 230], [200, 220, 250], 240)[:, None, :]
        image[240:] = rng.integers(30, 120, size=(240, 640, 3))
    with pytest.raises(CheckFailed) as failed:
        model.selfie_face(png_bytes(image))
    assert failed.value.code == "selfie_no_face"


def test_a_tiny_face_is_refused_with_its_size(faces_dir, model):
    from vigil.identity._faces import MIN_SELFIE_FACE_PX

    small = photo(faces_dir, "barack_obama/5.jpg", 160)  # 320x240 -> 160x120: a ~54 px face
    with pytest.raises(CheckFailed) as failed:
        model.selfie_face(small)
    assert failed.value.code == "selfie_unverified_other"
    width = model.detect(small)[0].width
    assert width < MIN_SELFIE_FACE_PX
    assert f"{width} pixels wide; at least {MIN_SELFIE_FACE_PX}" in failed.value.reason


def test_a_document_without_a_face(model):
    from PIL import Image, ImageDraw

    card = Image.new("RGB", (900, 570), (220, 225, 235))
    draw = ImageDraw.Draw(card)
    for row in range(8):
        draw.rectangle((60, 60 + 55 * row, 60 + 90 * (row + 2), 85 + 55 * row), fill=(60, 60, 60))
    with pytest.raises(CheckFailed) as failed:
        model.document_face(png_bytes(np.asarray(card)))
    assert failed.value.code == "selfie_document_missing_photo"


# -- images in -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pillow():
    require_modules("PIL")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not an image"),
    (b"%PDF-1.7 a pdf, not a photo", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
    (lambda: png_bytes(np.zeros((40, 40, 3), np.uint8))[:60], "damaged or truncated"),
    (lambda: png_bytes(np.zeros((8, 300, 3), np.uint8)), "at least 16 a side"),
], ids=["empty", "pdf", "png-header-only", "truncated-png", "too-thin"])
def test_non_images_raise_a_clear_image_error(pillow, data, message):
    data = data() if callable(data) else data
    with pytest.raises(ImageError, match=message) as raised:
        load_rgb(data)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, DataError)


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((40, 40, 3), np.float32), "must be uint8"),
    (np.zeros((40, 40, 2), np.uint8), r"must be \(H, W\)"),
    ("a path", "file bytes or a numpy array"),
])
def test_unusable_arrays_raise_image_error(array, message):
    with pytest.raises(ImageError, match=message):
        load_rgb(array)


def test_the_checks_turn_a_non_image_upload_into_a_verdict(faces_dir, model):
    # detect/embed raise ImageError; the checks say "requires_input", never crash a session
    with pytest.raises(ImageError):
        model.detect(b"GIF89a but nothing after")
    with pytest.raises(CheckFailed) as failed:
        model.selfie_face(b"GIF89a but nothing after")
    assert failed.value.code == "selfie_unverified_other"
    assert "the selfie is not a usable image" in failed.value.reason
    assert isinstance(failed.value.__cause__, ImageError)
    with pytest.raises(CheckFailed, match="the document image is not a usable image"):
        model.check_selfie(b"%PDF-1.7", photo(faces_dir, "joe_biden/2.jpg", 600))


@functools.cache
def _encoded(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


VALID_FILES = st.sampled_from(("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")).map(_encoded)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),  # noise
    st.builds(lambda f, cut: f[:cut], VALID_FILES, st.integers(0, 3000)),
    st.builds(lambda f, at, junk: f[:at] + junk + f[at + len(junk):],  # a corrupted stretch
              VALID_FILES, st.integers(0, 3000),
              st.binary(min_size=1, max_size=16)),
))
def test_any_bytes_decode_or_raise_image_error(pillow, data):
    try:
        rgb = load_rgb(data)
    except ImageError:
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_exif_orientation_is_applied(pillow):
    from PIL import Image

    rng = np.random.default_rng(2)
    upright = rng.integers(0, 255, size=(40, 60, 3), dtype=np.uint8)
    # stored turned 90 degrees anticlockwise (a phone held sideways), with the EXIF tag that
    # tells viewers to turn it 90 degrees clockwise for display
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    assert np.array_equal(load_rgb(buffer.getvalue()), upright)


def test_transparency_is_laid_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    assert (load_rgb(rgba) == 255).all()


# -- the embedding -------------------------------------------------------------------------


def test_embedding_is_128_d_deterministic_and_input_independent(faces_dir, model):
    rgb = photo(faces_dir, "kit_harington/3.jpg")
    face = model.detect(rgb)[0]
    assert model.detect(rgb) == [face]  # detection repeats too
    left, top, right, bottom = face.box
    assert len(face.landmarks) == 5
    assert all(left <= x <= right and top <= y <= bottom for x, y in face.landmarks)
    first = model.embed(rgb, face)
    assert first.shape == (128,) and first.dtype == np.float64
    assert np.array_equal(first, model.embed(rgb, face))
    assert np.array_equal(first, model.embed(png_bytes(rgb), face))
    assert model.chip(rgb, face).shape == (150, 150, 3)


def test_boxes_are_in_the_original_pixels_of_a_large_image(faces_dir, model):
    from PIL import Image

    rgb = photo(faces_dir, "barack_obama/2.jpg")  # 1280x720: detected as it is
    large = np.asarray(Image.fromarray(rgb).resize((2560, 1440)))  # shrunk to detect
    small_box = np.array(model.detect(rgb)[0].box)
    large_box = np.array(model.detect(large)[0].box)
    # the detector's pyramid steps differ between the two sizes, so the boxes agree to ~10%
    assert np.abs(large_box - 2 * small_box).max() <= 0.15 * 2 * (small_box[2] - small_box[0])


def test_threads_get_the_same_embeddings(faces_dir, model):
    rgb = photo(faces_dir, "alex_lacamoire/1.png")
    face = model.detect(rgb)[0]
    expected = model.embed(rgb, face)
    results = [None] * 4

    def work(i):
        results[i] = model.embed(rgb, face)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(r, expected) for r in results)


def test_missing_model_files_name_the_fix(tmp_path):
    from vigil.identity._faces import FaceModel

    with pytest.raises(FileNotFoundError, match="reinstall face-recognition-models"):
        FaceModel(models_dir=tmp_path).detect(np.zeros((40, 40, 3), np.uint8))


def test_a_small_face_in_a_large_photo_is_found_on_a_second_look(faces_dir, model):
    face_only = photo(faces_dir, "barack_obama/5.jpg")  # 320x240, face ~108 px
    large = np.full((2000, 3000, 3), 128, np.uint8)  # 6 MP: detected as a 1 MP copy
    large[900:1140, 1400:1720] = face_only
    assert model.detect(large) == []  # the face is ~44 px in the 1 MP copy: missed
    face = model.selfie_face(large)  # found at 4 MP, ~108 px in the original
    assert face.box[0] >= 1400 and face.box[2] <= 1720 + 10


# -- the measurement behind the threshold --------------------------------------------------


@pytest.fixture(scope="module")
def small_faces_dir(faces_dir, tmp_path_factory):
    """Three shared photographs of two people, shrunk to 400 px (a temporary folder)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("faces")
    for name in ("barack_obama/2.jpg", "barack_obama/3.jpg", "joe_biden/2.jpg"):
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(photo(faces_dir, name, 400)).save(root / name)
    return root


def test_measure_faces_counts_pairs_and_rates(small_faces_dir, model):
    from vigil.bench._identity_faces import measure_faces

    result = measure_faces(small_faces_dir, seed=7, model=model, degradations=("portrait",))
    assert result["pairs"]["clean"] == {"same": 1, "different": 2}
    # each photograph against the copies of the 2 others: 2 same-person ordered pairs of 6
    assert result["pairs"]["portrait"] == {"same": 2, "different": 4}
    assert result["at_threshold"]["clean"] == {"far": 0.0, "frr": 0.0, "same": 1, "different": 2}
    far = [p[1] for p in result["curve"]]
    frr = [p[2] for p in result["curve"]]
    assert far == sorted(far) and frr == sorted(frr, reverse=True)
    assert far[0] == 0.0 and frr[-1] == 0.0  # 0.30 accepts no stranger, 0.90 rejects no one
    assert result["latency"]["images"] == 6
    with pytest.raises(ValueError, match="unknown degradation"):
        measure_faces(small_faces_dir, seed=7, model=model, degradations=("fog",))


@pytest.mark.parametrize("kind", ["blur", "noise", "jpeg", "small", "dark", "bright", "tilted",
                                  "portrait", "printed"])
def test_degraded_copies_repeat_with_their_seed(faces_dir, model, kind):
    from vigil.bench._identity_faces import DEGRADATIONS, degrade

    assert kind in DEGRADATIONS
    rgb = photo(faces_dir, "barack_obama/5.jpg")
    face = model.detect(rgb)[0]
    first = degrade(rgb, face, kind, np.random.default_rng([7, 0]))
    assert first.dtype == np.uint8 and first.ndim == 3 and not np.array_equal(first, rgb)
    assert np.array_equal(first, degrade(rgb, face, kind, np.random.default_rng([7, 0])))
