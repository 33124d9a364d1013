"""Cross-session identity signals and the face index under them."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_support import require_modules

from vigil._errors import DataError
from vigil.identity import SessionFacts
from vigil.identity._face_index import FaceIndex
from vigil.identity._signals import (
    DEVICE_SESSIONS_24H_ELEVATED,
    DEVICE_SESSIONS_24H_HIGH,
    FEATURE_NAMES,
    IP_SESSIONS_24H_ELEVATED,
    RETRY_FAILURES_ELEVATED,
    RETRY_FAILURES_HIGH,
    RETRY_FAILURES_LOW,
    IdentitySignals,
)


@pytest.fixture(autouse=True)
def _hnswlib():
    """The face index needs the identity extra's hnswlib."""
    require_modules("hnswlib")

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DIM = 128


def face(person: int, jitter: int = 0) -> np.ndarray:
    """Person ``person``'s face embedding: people are ~1.6 apart, one person's photos ~0.1."""
    base = np.random.default_rng(person).normal(0, 0.1, DIM)
    if jitter:
        base = base + np.random.default_rng(10_000 + 7919 * person + jitter).normal(0, 0.008, DIM)
    return base


def facts(session_id: str, minutes: float = 0, **kw) -> SessionFacts:
    """A verified session of Anna Eriksson, ``minutes`` after T0, overridable by keyword."""
    values = {
        "tenant": "acme",
        "outcome": "verified",
        "name": "Anna Maria Eriksson",
        "birth_date": date(1990, 1, 2),
        "document_number": "L898902C3",
        "document_country": "UTO",
    }
    values.update(kw)
    return SessionFacts(session_id, created_at=T0 + timedelta(minutes=minutes), **values)


@pytest.fixture
def signals() -> IdentitySignals:
    """An empty memory of sessions."""
    return IdentitySignals()


def kinds(insights) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {i.kind: (i.level, i.related_sessions) for i in insights}


# --- documents --------------------------------------------------------------------------------


def test_the_same_person_again_raises_nothing(signals):
    signals.observe(facts("s1", face_embedding=face(1, 1)))
    again = facts("s2", 60, name="ANNA ERIKSSON", face_embedding=face(1, 2))
    assert signals.insights(again) == []
    features = signals.features(again)
    assert features["session_count_by_document"] == 1
    assert features["identity_count_by_document"] == 0
    assert features["session_count_by_face"] == 1
    assert features["identity_count_by_face"] == 0


def test_a_document_under_another_name_is_elevated(signals):
    signals.observe(facts("s1"))
    found = kinds(signals.insights(facts("s2", 60, name="Bo Lind")))
    assert found == {"document_reused": ("elevated", ("s1",))}


def test_a_document_under_another_birth_date_counts_as_another_identity(signals):
    signals.observe(facts("s1"))
    later = facts("s2", 60, birth_date=date(1991, 1, 2))
    assert kinds(signals.insights(later))["document_reused"][0] == "elevated"
    assert signals.features(later)["identity_count_by_document"] == 1


def test_a_document_with_another_face_is_high(signals):
    signals.observe(facts("s1", face_embedding=face(1)))
    insight = signals.insights(facts("s2", 60, face_embedding=face(2)))[0]
    assert (insight.kind, insight.level, insight.related_sessions) == (
        "document_reused",
        "high",
        ("s1",),
    )
    assert "different face" in insight.detail


def test_a_document_under_two_other_identities_is_high(signals):
    signals.observe(facts("s1", name="Bo Lind"))
    signals.observe(facts("s2", 10, name="Cy Berg"))
    signals.observe(facts("s3", 20, name="Bo Lind"))  # Bo again: still two identities
    later = facts("s4", 30)
    assert kinds(signals.insights(later))["document_reused"] == ("high", ("s1", "s2", "s3"))
    assert signals.features(later)["identity_count_by_document"] == 2


def test_document_numbers_compare_in_normal_form_and_by_country(signals):
    signals.observe(facts("s1", document_number="l898-902 c3", name="Bo Lind"))
    assert "document_reused" in kinds(signals.insights(facts("s2", 60)))
    assert signals.insights(facts("s3", 60, document_country="D")) == []


# --- faces ------------------------------------------------------------------------------------


def test_a_face_under_another_identity_is_elevated_then_high(signals):
    signals.observe(facts("s1", face_embedding=face(1, 1), name="Bo Lind", document_number="A1"))
    later = facts("s2", 60, face_embedding=face(1, 2))
    assert kinds(signals.insights(later)) == {"face_reused": ("elevated", ("s1",))}
    signals.observe(facts("s3", 30, face_embedding=face(1, 3), name="Cy Berg", document_number="B"))
    insight = signals.insights(later)[0]
    assert (insight.kind, insight.level, insight.related_sessions) == (
        "face_reused",
        "high",
        ("s1", "s3"),
    )
    assert "2 other identities" in insight.detail
    assert signals.features(later)["identity_count_by_face"] == 2


def test_a_different_face_under_another_identity_raises_nothing(signals):
    signals.observe(facts("s1", face_embedding=face(2), name="Bo Lind", document_number="A1"))
    assert signals.insights(facts("s2", 60, face_embedding=face(1))) == []


def test_the_face_threshold_decides_what_is_the_same_face():
    strict = IdentitySignals(face_threshold=0.05)
    strict.observe(facts("s1", face_embedding=face(1, 1), name="Bo Lind", document_number="A1"))
    assert strict.insights(facts("s2", 60, face_embedding=face(1, 2))) == []


def test_a_verified_face_of_an_earlier_impersonation_attempt_is_high(signals):
    signals.observe(
        facts(
            "s1",
            outcome="requires_input",
            error_code="selfie_face_mismatch",
            face_embedding=face(3, 1),
            name="Bo Lind",
            document_number="STOLEN1",
        )
    )
    found = kinds(signals.insights(facts("s2", 60, face_embedding=face(3, 2))))
    assert found["face_linked_to_fraud"] == ("high", ("s1",))
    assert found["face_reused"] == ("elevated", ("s1",))
    failed = facts("s3", 60, outcome="requires_input", face_embedding=face(3, 3))
    assert kinds(signals.insights(failed))["face_linked_to_fraud"][0] == "elevated"


def test_an_earlier_blurry_failure_is_not_fraud_like(signals):
    signals.observe(
        facts("s1", outcome="requires_input", error_code="document_mrz_unreadable",
              face_embedding=face(3, 1))
    )
    assert signals.insights(facts("s2", 60, face_embedding=face(3, 2))) == []


# --- devices, IPs and retries -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "level"),
    [
        (DEVICE_SESSIONS_24H_ELEVATED - 1, None),
        (DEVICE_SESSIONS_24H_ELEVATED, "elevated"),
        (DEVICE_SESSIONS_24H_HIGH, "high"),
    ],
)
def test_many_sessions_from_one_device(signals, count, level):
    for i in range(count):
        signals.observe(facts(f"d{i}", i, device_id="dev1", name=f"Person {chr(65 + i)} Lind"))
    signals.observe(facts("old", -25 * 60, device_id="dev1"))  # outside the 24 h window
    later = facts("now", 60, device_id="dev1")
    assert kinds(signals.insights(later)).get("device_many_sessions", (None,))[0] == level
    features = signals.features(later)
    assert features["session_count_by_device_24h"] == count
    assert features["session_count_by_device_30d"] == count + 1


def test_many_sessions_from_one_ip(signals):
    for i in range(IP_SESSIONS_24H_ELEVATED):
        signals.observe(facts(f"i{i}", i, ip="203.0.113.9", document_number=f"N{i}"))
    insight = signals.insights(facts("now", 60, ip="203.0.113.9"))[0]
    assert (insight.kind, insight.level) == ("ip_many_sessions", "elevated")
    assert "IP address" in insight.detail


@pytest.mark.parametrize(
    ("failures", "level"),
    [
        (RETRY_FAILURES_LOW - 1, None),
        (RETRY_FAILURES_LOW, "low"),
        (RETRY_FAILURES_ELEVATED, "elevated"),
        (RETRY_FAILURES_HIGH, "high"),
    ],
)
def test_retries_after_failures(signals, failures, level):
    # the failures share the account, the device or the document with the new attempt
    shared = [{"account_id": "acct"}, {"device_id": "dev"}, {}]
    for i in range(failures):
        signals.observe(
            facts(f"f{i}", i, outcome="requires_input", error_code="document_expired",
                  **({"document_number": f"OTHER{i}"} if shared[i % 3] else {}),
                  **shared[i % 3])
        )
    signals.observe(facts("ok", 0.5, account_id="acct"))  # a success is not a failure
    later = facts("now", 60, account_id="acct", device_id="dev")
    assert kinds(signals.insights(later)).get("retries_after_failures", (None,))[0] == level
    assert signals.features(later)["failure_count_24h"] == failures


def test_failures_sharing_only_an_ip_are_not_retries(signals):
    for i in range(RETRY_FAILURES_HIGH):
        signals.observe(facts(f"f{i}", i, outcome="requires_input", ip="198.51.100.1",
                              document_number=f"N{i}", name=f"P{i} Lind"))
    later = facts("now", 60, ip="198.51.100.1")
    assert "retries_after_failures" not in kinds(signals.insights(later))
    assert signals.features(later)["failure_count_30d"] == 0


# --- point in time, tenants, redaction --------------------------------------------------------


def test_only_earlier_sessions_count(signals):
    signals.observe(facts("later", 120, name="Bo Lind", face_embedding=face(1), device_id="d"))
    signals.observe(facts("same_time", 60, name="Cy Berg", device_id="d"))
    now = facts("now", 60, face_embedding=face(2), device_id="d")
    assert signals.insights(now) == []
    assert set(signals.features(now).values()) == {0.0}


def test_naive_and_aware_times_compare_as_utc(signals):
    signals.observe(facts("s1", name="Bo Lind"))
    naive = SessionFacts("s2", "acme", datetime(2026, 3, 1, 13), "verified",
                         document_number="L898902C3", document_country="UTO", name="Anna Lind")
    assert kinds(signals.insights(naive))["document_reused"][1] == ("s1",)


def test_tenants_never_see_each_other(signals):
    signals.observe(facts("s1", tenant="other", name="Bo Lind", face_embedding=face(1),
                          device_id="d", account_id="a", outcome="requires_input"))
    now = facts("now", 60, face_embedding=face(1, 1), device_id="d", account_id="a")
    assert signals.insights(now) == []
    assert set(signals.features(now).values()) == {0.0}


def test_forget_drops_the_session_and_its_face(signals):
    signals.observe(facts("s1", name="Bo Lind", face_embedding=face(1), device_id="d"))
    now = facts("now", 60, face_embedding=face(1, 1), device_id="d")
    assert signals.insights(now)
    signals.forget("s1")
    signals.forget("s1")  # twice is harmless
    signals.forget("never-seen")
    assert signals.insights(now) == []
    assert len(signals) == 0
    faces = signals._tenants["acme"].faces
    assert len(faces) == 0 and faces.search(face(1), 5, 10.0) == []


def test_observing_a_session_again_replaces_it(signals):
    signals.observe(facts("s1", name="Bo Lind", face_embedding=face(1)))
    signals.observe(facts("s1", face_embedding=face(5)))  # reprocessed: now Anna, another face
    assert len(signals) == 1
    assert signals.insights(facts("now", 60, face_embedding=face(5, 1))) == []


def test_a_session_already_observed_does_not_match_itself(signals):
    own = facts("s1", name="Bo Lind", face_embedding=face(1), device_id="d")
    signals.observe(own)
    assert signals.insights(own) == []


def test_features_have_the_declared_names(signals):
    assert list(signals.features(facts("s1"))) == list(FEATURE_NAMES)
    insights, features = signals.assess(facts("s1"))
    assert insights == [] and list(features) == list(FEATURE_NAMES)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"outcome": "processing"}, "'verified' or 'requires_input'"),
        ({"tenant": ""}, "need a session_id and a tenant"),
        ({"face_embedding": np.zeros(3)}, "must be 128 numbers"),
    ],
)
def test_bad_facts_are_refused_with_a_reason(signals, kw, message):
    with pytest.raises(DataError, match=message):
        signals.observe(facts("s1", **kw))


# --- the property: point in time and tenant isolation, whatever the order ---------------------

NAMES = ["Anna Eriksson", "ANNA MARIA ERIKSSON", "Bo Lind", "Cy Berg"]

session_draws = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),  # tenant
        st.integers(0, 36 * 60).map(lambda m: m - m % 30),  # minutes; ties happen
        st.sampled_from(["verified", "requires_input"]),
        st.sampled_from([None, "selfie_face_mismatch", "document_expired"]),
        st.sampled_from([None, "acct1", "acct2"]),
        st.sampled_from([None, "dev1", "dev2"]),
        st.sampled_from([None, "10.0.0.1"]),
        st.sampled_from([None, "D1", "D2"]),
        st.sampled_from(NAMES),
        st.sampled_from([None, 0, 1, 2]),  # whose face
    ),
    min_size=1,
    max_size=10,
)


def _sessions(draws) -> list[SessionFacts]:
    out = []
    for i, (tenant, minutes, outcome, error, acct, dev, ip, doc, name, person) in enumerate(draws):
        out.append(
            SessionFacts(
                f"s{i}",
                tenant,
                T0 + timedelta(minutes=minutes),
                outcome,
                error_code=error if outcome == "requires_input" else None,
                account_id=acct,
                device_id=dev,
                ip=ip,
                document_number=doc,
                document_country="UTO" if doc else None,
                name=name,
                birth_date=date(1990, 1, 2),
                face_embedding=None if person is None else face(person, i + 1),
            )
        )
    return out


def _seen_only_earlier(sessions, target) -> IdentitySignals:
    memory = IdentitySignals()
    for s in sessions:
        if s.tenant == target.tenant and s.created_at < target.created_at:
            memory.observe(s)
    return memory


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session_draws, st.randoms(use_true_random=False), st.data())
def test_signals_depend_only_on_earlier_sessions_of_the_same_tenant(draws, rnd, data):
    sessions = _sessions(draws)
    shuffled = list(sessions)
    rnd.shuffle(shuffled)
    everything = IdentitySignals()
    for s in shuffled:  # later sessions, other tenants, and the session itself, in any order
        everything.observe(s)
    for target in sessions:
        reference = _seen_only_earlier(sessions, target)
        assert everything.insights(target) == reference.insights(target)
        assert everything.features(target) == reference.features(target)
    # forgetting sessions is the same as never having seen them
    forgotten = data.draw(st.sets(st.sampled_from([s.session_id for s in sessions])))
    for sid in forgotten:
        everything.forget(sid)
    kept = [s for s in sessions if s.session_id not in forgotten]
    for target in sessions:
        reference = _seen_only_earlier(kept, target)
        assert everything.features(target) == reference.features(target)


# --- the face index ---------------------------------------------------------------------------


def test_search_agrees_with_brute_force():
    rng = np.random.default_rng(7)
    points = rng.normal(0, 0.1, (2000, DIM)).astype(np.float32)
    index = FaceIndex(seed=1)
    for i, p in enumerate(points):
        index.add(f"k{i}", p)
    assert len(index) == 2000  # grew past its first 1,024 slots
    queries = rng.normal(0, 0.1, (50, DIM)).astype(np.float32)
    hits = 0
    for q in queries:
        distances = np.linalg.norm(points - q, axis=1)
        truth = {f"k{i}" for i in np.argsort(distances)[:10]}
        found = index.search(q, k=10, max_distance=100.0)
        assert [d for _, d in found] == sorted(d for _, d in found)
        for key, d in found:  # distances are Euclidean, not squared
            assert d == pytest.approx(distances[int(key[1:])], rel=1e-4)
        hits += len(truth & {key for key, _ in found})
    assert hits / (10 * len(queries)) >= 0.95


def test_search_keeps_only_faces_within_max_distance():
    index = FaceIndex(dim=2)
    index.add("near", [0.0, 0.5])
    index.add("far", [0.0, 2.0])
    assert [k for k, _ in index.search([0.0, 0.0], k=5, max_distance=0.6)] == ["near"]
    assert index.search([0.0, 0.0], k=5, max_distance=0.1) == []
    assert [k for k, _ in index.within([0.0, 0.0], 10.0, start_k=1)] == ["near", "far"]


def _saved_bytes(index: FaceIndex, tmp_path) -> bytes:
    path = tmp_path / "index.bin"
    index._index.save_index(str(path))  # never done in vigil; here to look at every byte
    return path.read_bytes()


def test_removal_is_irreversible(tmp_path):
    rng = np.random.default_rng(3)
    vectors = {f"k{i}": rng.normal(0, 0.1, DIM).astype(np.float32) for i in range(50)}
    index = FaceIndex()
    for key, v in vectors.items():
        index.add(key, v)
    label = index._labels["k7"]
    before = _saved_bytes(index, tmp_path)
    assert vectors["k7"].tobytes() in before  # the check below can see a face

    index.remove("k7")
    assert "k7" not in index and index.get("k7") is None and len(index) == 49
    assert all(key != "k7" for key, _ in index.search(vectors["k7"], 49, 100.0))
    after = _saved_bytes(index, tmp_path)
    assert vectors["k7"].tobytes() not in after
    assert vectors["k8"].tobytes() in after
    with pytest.raises(RuntimeError):
        index._index.get_items([label])
    # no part of the removed face survives either (any 4 consecutive numbers)
    removed = vectors["k7"].tobytes()
    assert not any(removed[i : i + 16] in after for i in range(0, len(removed) - 16, 4))


def test_plain_mark_deleted_would_keep_the_face(tmp_path):
    # why remove() overwrites first: hnswlib's own deletion leaves the numbers in place
    index = FaceIndex()
    v = np.random.default_rng(4).normal(0, 0.1, DIM).astype(np.float32)
    index.add("k", v)
    index._index.mark_deleted(index._labels["k"])
    assert v.tobytes() in _saved_bytes(index, tmp_path)


def test_removed_slots_are_reused_and_a_readded_key_replaces_its_face():
    index = FaceIndex(dim=4)
    for i in range(1024):
        index.add(f"k{i}", np.full(4, i, dtype=np.float32))
    capacity = index._index.get_max_elements()
    index.remove("k0")
    index.add("new", np.ones(4))
    assert index._index.get_max_elements() == capacity  # the freed slot, not a resize
    index.add("new", np.full(4, 5000.0))
    assert index.get("new").tolist() == [5000.0] * 4
    assert index.search(np.full(4, 5000.0), 1, 0.5)[0][0] == "new"
    assert len(index) == 1024


def test_concurrent_adds_removes_and_searches():
    index = FaceIndex(dim=16, seed=2)
    errors = []

    def work(worker: int) -> None:
        rng = np.random.default_rng(worker)
        try:
            for i in range(300):
                index.add(f"w{worker}-{i}", rng.normal(size=16))
                if i % 3 == 0:
                    index.remove(f"w{worker}-{i}")
                index.search(rng.normal(size=16), 5, 100.0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(index) == 4 * 200


@pytest.mark.parametrize(
    ("embedding", "message"),
    [
        (np.zeros(127), "128 numbers"),
        (np.zeros((1, 128)), "128 numbers"),
        (np.full(128, np.nan), "finite"),
        ("not a face", "128 numbers"),
    ],
)
def test_bad_embeddings_are_refused(embedding, message):
    with pytest.raises(DataError, match=message):
        FaceIndex().add("k", embedding)
