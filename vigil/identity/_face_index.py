"""An approximate-nearest-neighbour index over face embeddings, to find the sessions that
showed the same face.

dlib's face embeddings are 128 numbers compared by Euclidean distance: under about 0.6 is the
same person. :class:`FaceIndex` keeps them in an HNSW graph (hnswlib, L2 space), so a lookup
visits a few hundred faces rather than every face a tenant has seen.

The index lives in memory only and is never saved: the service rebuilds it from the
encrypted store when it starts. That keeps one copy of the faces (in the store, encrypted
and redactable) instead of two.

.. warning::
   Redaction must not leave a face behind. hnswlib's ``mark_deleted`` only hides an entry
   from searches and keeps its numbers in memory (and in anything saved from it), so
   :meth:`FaceIndex.remove` first overwrites the entry with random numbers and only then
   marks it deleted; the slot is reused by the next :meth:`FaceIndex.add`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

import numpy as np

from vigil._errors import DataError

# HNSW settings: M links per node and the breadth of the build-time search; both trade memory
# and build time for recall. On 20,000 random 128-d vectors (the hard case: no clusters) a
# jittered copy of a stored face came back as the nearest 92% of the time with M=16 and 100%
# with M=32 (ef 128), at ~1.5x the build time; a missed duplicate face is the costly error.
_M = 32
_EF_CONSTRUCTION = 200
# the breadth of a query's search: at least this, and at least k
_EF_SEARCH = 128
_INITIAL_CAPACITY = 1024


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # the identity extra is optional
        raise ImportError(
            "the face index needs hnswlib: pip install 'vigil[identity]'"
        ) from exc
    return hnswlib


class FaceIndex:
    """Face embeddings by key (a session id), searchable by Euclidean distance.

    Thread-safe: every method holds one lock, so a worker may add while another searches.
    The capacity doubles as the index fills; removed entries' slots are reused.

    >>> index = FaceIndex(dim=3)
    >>> index.add("sess_a", [0.1, 0.2, 0.3])
    >>> index.add("sess_b", [0.9, 0.9, 0.9])
    >>> [(key, round(d, 3)) for key, d in index.search([0.1, 0.2, 0.4], k=5, max_distance=0.6)]
    [('sess_a', 0.1)]
    >>> index.remove("sess_a")
    >>> index.search([0.1, 0.2, 0.4], k=5, max_distance=0.6), len(index)
    ([], 1)
    """

    def __init__(self, dim: int = 128, *, seed: int | None = None):
        if not isinstance(dim, int) or dim < 1:
            raise DataError(f"a face index needs a positive whole dimension, not {dim!r}")
        self.dim = dim
        self._lock = threading.RLock()
        # the noise that overwrites removed faces must not be predictable from a seed
        # stored in the code; the graph's own seed (layer choice) may be
        self._noise = np.random.default_rng()
        self._index = _hnswlib().Index(space="l2", dim=dim)
        self._index.init_index(
            max_elements=_INITIAL_CAPACITY,
            M=_M,
            ef_construction=_EF_CONSTRUCTION,
            random_seed=100 if seed is None else seed,
            allow_replace_deleted=True,
        )
        self._index.set_num_threads(1)  # one query at a time is small work; threads cost more
        self._labels: dict[str, int] = {}  # key -> hnswlib label
        self._keys: dict[int, str] = {}  # hnswlib label -> key
        self._next_label = 0
        self._deleted = 0  # slots holding noise, ready for reuse

    def _vector(self, embedding: Iterable[float] | np.ndarray) -> np.ndarray:
        try:
            vector = np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"a face embedding must be {self.dim} numbers") from exc
        if vector.shape != (self.dim,):
            raise DataError(
                f"a face embedding must be {self.dim} numbers, not an array of shape "
                f"{vector.shape}"
            )
        if not np.all(np.isfinite(vector)):
            raise DataError("a face embedding must be finite numbers (no NaN or infinity)")
        return vector

    def __len__(self) -> int:
        with self._lock:
            return len(self._labels)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._labels

    def add(self, key: str, embedding: Iterable[float] | np.ndarray) -> None:
        """Index ``embedding`` under ``key``; a key already present has its face replaced
        (the old numbers are overwritten, not kept)."""
        vector = self._vector(embedding)
        with self._lock:
            if key in self._labels:
                # updating a live entry in place overwrites its numbers and mends its links
                self._index.add_items(vector[None, :], [self._labels[key]])
                return
            if self._deleted == 0 and self._index.get_current_count() >= (
                self._index.get_max_elements()
            ):
                self._index.resize_index(2 * self._index.get_max_elements())
            label = self._next_label
            self._next_label += 1
            self._index.add_items(vector[None, :], [label], replace_deleted=self._deleted > 0)
            if self._deleted > 0:
                self._deleted -= 1
            self._labels[key] = label
            self._keys[label] = key

    def remove(self, key: str) -> None:
        """Remove ``key``'s face irreversibly; a key not in the index is ignored (removal is
        idempotent, as redaction retries may call it twice)."""
        with self._lock:
            label = self._labels.pop(key, None)
            if label is None:
                return
            del self._keys[label]
            # overwrite the numbers first (an update of a live entry), then hide the slot
            noise = self._noise.standard_normal(self.dim).astype(np.float32)
            self._index.add_items(noise[None, :], [label])
            self._index.mark_deleted(label)
            self._deleted += 1

    def get(self, key: str) -> np.ndarray | None:
        """The embedding stored under ``key`` (float32), or ``None``."""
        with self._lock:
            label = self._labels.get(key)
            if label is None:
                return None
            return np.asarray(self._index.get_items([label])[0], dtype=np.float32)

    def search(
        self, embedding: Iterable[float] | np.ndarray, k: int, max_distance: float
    ) -> list[tuple[str, float]]:
        """Up to ``k`` keys whose faces lie within ``max_distance`` (Euclidean, inclusive) of
        ``embedding``, nearest first, as ``(key, distance)``.

        Approximate: HNSW may miss a true neighbour (rarely; recall is tested against brute
        force). Ask for a larger ``k`` when the k-th result is still within ``max_distance``
        and more may follow.
        """
        vector = self._vector(embedding)
        if k < 1:
            raise DataError(f"k must be at least 1, not {k!r}")
        with self._lock:
            k = min(k, len(self._labels))
            if k == 0:
                return []
            self._index.set_ef(max(_EF_SEARCH, k))
            labels, squared = self._index.knn_query(vector[None, :], k=k)
            # hnswlib's l2 space gives squared distances
            found = [
                (self._keys[int(label)], math.sqrt(max(float(sq), 0.0)))
                for label, sq in zip(labels[0], squared[0], strict=True)
            ]
        return [(key, distance) for key, distance in found if distance <= max_distance]

    def within(
        self, embedding: Iterable[float] | np.ndarray, max_distance: float, *, start_k: int = 16
    ) -> list[tuple[str, float]]:
        """Every key within ``max_distance`` of ``embedding`` (as far as HNSW finds them),
        nearest first: :meth:`search` with ``k`` doubled until a result lies beyond."""
        k = start_k
        while True:
            found = self.search(embedding, k, max_distance)
            if len(found) < k or k >= len(self):
                return found
            k *= 2
