"""The selfie check: find the face in a selfie and the portrait on a document, turn each into
dlib's 128-d face embedding, and call them the same person when the embeddings are closer
than :data:`MATCH_THRESHOLD`.

dlib is called directly, with the model files of the ``face-recognition-models`` package read
from its folder (never imported: its ``__init__`` needs ``pkg_resources``, which recent
setuptools no longer ships; and nothing is ever downloaded at run time):

- faces are found with dlib's HOG detector (``get_frontal_face_detector``), on a copy
  brought to about :data:`DETECT_PIXELS` (large photos shrunk, small ones upsampled once, so
  the cost stays near 0.1-0.3 s and a face of 40 pixels is still found); boxes are mapped back
  to the original pixels. When a shrunk photo shows no face, the checks look again at 4 MP;
- five landmarks (eye corners and the base of the nose) come from the 5-point shape model,
  on the original pixels (the 68-point model is licensed for non-commercial use only);
- the embedding is dlib's ResNet (``dlib_face_recognition_resnet_model_v1``) on the face
  aligned by those landmarks, 150x150 with 25% padding, no jitter (deterministic).

Quality is enforced before any comparison, each failure with its own code (see
:data:`~vigil.identity.ERROR_CODES`): no face in the selfie, more than one, a face too small to
compare, no portrait on the document, an upload that is no image. The checks
(``selfie_face``, ``document_face``, ``match``, ``check_selfie``) only ever raise
:class:`~vigil.identity.CheckFailed` for what the user sent; the primitives (``detect``,
``embed``, ``chip``) raise :class:`~vigil.identity._images.ImageError` for a bad image.

.. warning::
   This compares faces; it does not tell a live person from a photo of one, a screen or a
   mask (presentation attacks). Liveness is a separate check.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.identity._images import ImageError, load_rgb
from vigil.identity._types import CheckFailed, FaceMatch

# Two embeddings closer than this are the same person. Chosen from a measured curve, not
# guessed: 2026-11-29, vigil.bench._identity_faces.measure_faces(seed=0) on the 18 shared
# photographs of 6 people (../shared/data/faces) and 9 degraded copies of each (blur, noise,
# JPEG quality 15, shrunk to a 64-px face, dark, bright, tilted 15 degrees, pasted into a
# 180x230 portrait slot on a card, that card "printed and photographed"), each photograph
# against the copies of every other: 2,907 pairs, 551 of them same-person.
# Same-person distances reached 0.603, different-person ones started at 0.667: every
# threshold in [0.61, 0.66] made no error on these pairs.
# Rule: the smallest different-person distance less a margin of 0.10, rounded down, because a
# false accept lets an impostor through while a false reject costs a retake, and 2,356
# different-person pairs of 6 people cannot show the near tail of a real population (the
# face_recognition project warns that at dlib's usual 0.6 the model mixes up children, and
# that accuracy varies between ethnic groups). Cost on the measured pairs: FRR 0% on clean
# photos, 0.96% over the degraded ones (5.2% of over-exposed and 3.4% of printed-portrait
# pairs); FAR 0% everywhere.
MATCH_THRESHOLD = 0.56

# The HOG detector's cost grows with pixels (about 0.1-0.3 s per megapixel): detect on a copy of
# about this size. A face then needs about 40 px of width in the copy to be found.
DETECT_PIXELS = 1_000_000
# images at or below this are upsampled once (2x) before detection, so small faces are found
UPSAMPLE_BELOW_PIXELS = DETECT_PIXELS // 3

# A face narrower than this (detector box width, original pixels) is refused. Measured on the
# shared photographs shrunk step by step: against the full-size embedding, a face of 36 px
# drifts 0.21-0.40, 60 px 0.10-0.19, 90 px 0.05-0.13; a drift adds to same-person distances
# (up to 0.53 clean) and eats the margin below the threshold.
MIN_SELFIE_FACE_PX = 80
MIN_DOCUMENT_FACE_PX = 60  # a printed portrait is small; 180x230 slots give faces of ~100 px

# A second face counts in a selfie when at least this fraction of the largest one's width (a
# small face on a poster behind the person does not). On a document the largest face is the
# portrait; the smaller "ghost" copies printed for security are never compared.
SECOND_FACE_FRACTION = 0.4

_MODEL_FILES = {
    "shape": "shape_predictor_5_face_landmarks.dat",
    "embed": "dlib_face_recognition_resnet_model_v1.dat",
}


@dataclass(frozen=True)
class Face:
    """One face found in an image, in the image's own pixel coordinates."""

    # (left, top, right, bottom); may reach past the edge for a face cut by the frame
    box: tuple[int, int, int, int]
    score: float  # the HOG detector's margin; above 0 is a detection, above ~1 a clear one
    # the 5-point model's (x, y): the outer and inner corner of each eye, the base of the nose
    landmarks: tuple[tuple[int, int], ...]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


def _models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the face models are not installed; pip install 'vigil[identity]' "
                          "(face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise ImportError("dlib is not installed; pip install 'vigil[identity]' "
                          "(dlib-bin)") from exc
    return dlib


class FaceModel:
    """dlib's face detector, 5-point landmarks and 128-d embeddings, loaded on first use.

    One instance serves any number of threads: dlib's objects are not documented as
    thread-safe, so every call into dlib holds the instance's lock. The lock costs little:
    two threads calling dlib without it were no faster than one (measured on 2 cores), so
    for more throughput run more processes. Loading takes about half a second; keep one
    instance (:func:`default_model`) rather than one per request.

    ``threshold`` is the distance at and above which two faces are different people.
    """

    def __init__(self, threshold: float = MATCH_THRESHOLD, models_dir: str | Path | None = None):
        self.threshold = threshold
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._loaded = None

    def _models(self):
        # called with the lock held
        if self._loaded is None:
            dlib = _import_dlib()
            folder = Path(self.models_dir) if self.models_dir else _models_dir()
            paths = {k: folder / name for k, name in _MODEL_FILES.items()}
            missing = [str(p) for p in paths.values() if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"face model file(s) missing: {', '.join(missing)}; "
                                        "reinstall face-recognition-models")
            self._loaded = (
                dlib,
                dlib.get_frontal_face_detector(),
                dlib.shape_predictor(str(paths["shape"])),
                dlib.face_recognition_model_v1(str(paths["embed"])),
            )
        return self._loaded

    # -- detection and embedding -------------------------------------------------------------

    def detect(self, image, *, pixels: int = DETECT_PIXELS) -> list[Face]:
        """Every face in ``image`` (file bytes or an RGB array), largest first.

        The detector sees a copy of about ``pixels`` pixels (an image up to 1.25 times that
        is used as it is; one at most :data:`UPSAMPLE_BELOW_PIXELS` is upsampled once), so
        a face must be about 40 pixels wide *in that copy* to be found.
        """
        rgb = load_rgb(image)
        small, scale = _detection_copy(rgb, pixels)
        upsample = 1 if small.shape[0] * small.shape[1] <= UPSAMPLE_BELOW_PIXELS else 0
        with self._lock:
            dlib, detector, shape_predictor, _ = self._models()
            rects, scores, _ = detector.run(small, upsample, 0.0)
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                box = (round(rect.left() / scale), round(rect.top() / scale),
                       round(rect.right() / scale), round(rect.bottom() / scale))
                # landmarks on the original pixels: sharper than on the shrunk copy
                shape = shape_predictor(rgb, dlib.rectangle(*box))
                points = tuple((p.x, p.y) for p in shape.parts())
                faces.append(Face(box=box, score=float(score), landmarks=points))
        return sorted(faces, key=lambda f: f.width * f.height, reverse=True)

    def embed(self, image, face: Face) -> np.ndarray:
        """The 128-d embedding (float64, unit-free, deterministic) of ``face`` in ``image``."""
        rgb = load_rgb(image)
        with self._lock:
            dlib, _, _, encoder = self._models()
            descriptor = encoder.compute_face_descriptor(rgb, _shape(dlib, face), 0, 0.25)
        return np.array(descriptor, dtype=np.float64)

    def chip(self, image, face: Face, size: int = 150) -> np.ndarray:
        """The face aligned and cropped as the embedding sees it (RGB, ``size`` square):
        what to keep or show of a selfie instead of the whole photograph."""
        rgb = load_rgb(image)
        with self._lock:
            dlib, _, _, _ = self._models()
            return dlib.get_face_chip(rgb, _shape(dlib, face), size, 0.25)

    # -- quality rules -----------------------------------------------------------------------

    def _detect_or_look_closer(self, image, what: str) -> list[Face]:
        # a large photo is shrunk to ~1 MP to detect, which loses a face that is small in it
        # (a document held far from a 12 MP camera); only when nothing was found, look again
        # at 4 MP: 0.5-1 s more, paid on the failure path alone
        rgb = _upload(image, what)
        faces = self.detect(rgb)
        if not faces and rgb.shape[0] * rgb.shape[1] > 1.25 * DETECT_PIXELS:
            faces = self.detect(rgb, pixels=4 * DETECT_PIXELS)
        return faces

    def selfie_face(self, image) -> Face:
        """The one face of a selfie, or :class:`CheckFailed` saying why there is none.

        ``selfie_no_face``: nothing found; ``selfie_multiple_faces``: a second face at least
        :data:`SECOND_FACE_FRACTION` of the first's width; ``selfie_unverified_other``: the
        face is narrower than :data:`MIN_SELFIE_FACE_PX`, or the upload is not a usable image
        (the :class:`~vigil.identity._images.ImageError` is the cause).
        """
        faces = self._detect_or_look_closer(image, "selfie")
        if not faces:
            raise CheckFailed("selfie_no_face", "no face was found in the selfie; take it "
                              "facing the camera, in good light, the face filling the frame")
        main = faces[0]
        others = [f for f in faces[1:] if f.width >= SECOND_FACE_FRACTION * main.width]
        if others:
            raise CheckFailed("selfie_multiple_faces", f"{len(others) + 1} faces were found in "
                              "the selfie; only the person being verified may be in it")
        if main.width < MIN_SELFIE_FACE_PX:
            raise CheckFailed("selfie_unverified_other", f"the face in the selfie is "
                              f"{main.width} pixels wide; at least {MIN_SELFIE_FACE_PX} are "
                              "needed: hold the camera closer")
        return main

    def document_face(self, image) -> Face:
        """The portrait on a document: the largest face; smaller "ghost" copies are ignored.

        ``selfie_document_missing_photo``: no face at all; ``selfie_unverified_other``: the
        portrait is narrower than :data:`MIN_DOCUMENT_FACE_PX`, or the upload is not a usable
        image.
        """
        faces = self._detect_or_look_closer(image, "document image")
        if not faces:
            raise CheckFailed("selfie_document_missing_photo", "no face was found on the "
                              "document; photograph the side with the portrait, without glare")
        portrait = faces[0]
        if portrait.width < MIN_DOCUMENT_FACE_PX:
            raise CheckFailed("selfie_unverified_other", f"the portrait on the document is "
                              f"{portrait.width} pixels wide; at least {MIN_DOCUMENT_FACE_PX} "
                              "are needed: photograph the document closer")
        return portrait

    # -- comparison --------------------------------------------------------------------------

    def match(self, document_image, selfie_image) -> FaceMatch:
        """Compare the document's portrait with the selfie; quality failures raise
        :class:`CheckFailed`, a mismatch does not (see :meth:`check_selfie`)."""
        document = _upload(document_image, "document image")
        selfie = _upload(selfie_image, "selfie")
        document_embedding = self.embed(document, self.document_face(document))
        selfie_embedding = self.embed(selfie, self.selfie_face(selfie))
        distance = float(np.linalg.norm(document_embedding - selfie_embedding))
        return FaceMatch(distance=distance, threshold=self.threshold,
                         document_embedding=document_embedding,
                         selfie_embedding=selfie_embedding)

    def check_selfie(self, document_image, selfie_image) -> FaceMatch:
        """:meth:`match`, raising ``CheckFailed("selfie_face_mismatch")`` when the faces are
        of different people (distance at or above the threshold)."""
        result = self.match(document_image, selfie_image)
        if not result.same_person:
            raise CheckFailed("selfie_face_mismatch", f"the selfie does not match the "
                              f"document's portrait (distance {result.distance:.2f}, "
                              f"threshold {result.threshold:.2f})", face=result)
        return result


def _upload(image, what: str) -> np.ndarray:
    # the checks' side of the line: an upload that is no usable image is the user's to fix
    # (a verdict, CheckFailed), not a crash; load_rgb, detect and embed raise ImageError
    try:
        return load_rgb(image)
    except ImageError as exc:
        raise CheckFailed("selfie_unverified_other", f"the {what} is not a usable image: "
                          f"{exc}") from exc


def _detection_copy(rgb: np.ndarray, pixels: int) -> tuple[np.ndarray, float]:
    """``rgb`` shrunk to about ``pixels`` when larger, and the scale used."""
    height, width = rgb.shape[:2]
    if height * width <= 1.25 * pixels:
        return rgb, 1.0
    from PIL import Image

    scale = (pixels / (height * width)) ** 0.5
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BOX averages the pixels it drops (area resampling): no aliasing, which HOG features dislike
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    return np.ascontiguousarray(small), size[0] / width


def _shape(dlib, face: Face):
    if len(face.landmarks) != 5:
        raise ValueError(f"a Face needs the 5 landmarks of the 5-point model, not "
                         f"{len(face.landmarks)}")
    rect = dlib.rectangle(*(int(v) for v in face.box))
    parts = [dlib.point(int(x), int(y)) for x, y in face.landmarks]
    return dlib.full_object_detection(rect, parts)


_default: FaceModel | None = None
_default_lock = threading.Lock()


def default_model() -> FaceModel:
    """The process's shared :class:`FaceModel` (created on first call, loaded on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceModel()
        return _default


def check_selfie(document_image, selfie_image, *, model: FaceModel | None = None) -> FaceMatch:
    """Compare a selfie with a document's portrait using the shared model (or ``model``).

    Returns the :class:`~vigil.identity.FaceMatch` when they are the same person; raises
    :class:`~vigil.identity.CheckFailed` (``selfie_no_face``, ``selfie_multiple_faces``,
    ``selfie_unverified_other``, ``selfie_document_missing_photo`` or
    ``selfie_face_mismatch``) when not; an upload that is not a usable image is
    ``selfie_unverified_other``, with the :class:`~vigil.identity._images.ImageError` as cause.
    """
    return (model or default_model()).check_selfie(document_image, selfie_image)
