"""The identity graph: its incremental features against a from-scratch reference, the
point-in-time law, face linking, the popular-attribute cap, and its use in the benchmark."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil._errors import ConfigError
from vigil.identity._graph import (
    DEVICE,
    DOCUMENT,
    FACE,
    FEATURES,
    IP,
    KINDS,
    LABEL,
    LINKING,
    TOUCH,
    GraphStream,
    face_ids,
    graph_features,
    graph_stream,
    identity_graph_features,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400 * 1_000_000


# -- a from-scratch reference ------------------------------------------------------------------

def reference_features(stream: GraphStream, max_links: int) -> np.ndarray:
    """Each query's features recomputed from scratch out of the updates strictly before it."""
    order = stream.update_order()
    ts, node, kind, attr = (a[order] for a in (stream.ts, stream.node, stream.kind,
                                               stream.attr))
    out = np.full((len(stream.q_ts), len(FEATURES)), np.nan)
    for q, t in enumerate(stream.q_ts):
        before = ts < t
        first: dict[int, int] = {}
        users: dict[int, list[int]] = {}  # attribute -> distinct accounts in order of use
        attr_kind: dict[int, int] = {}
        labels: list[int] = []
        for when, a, k, x in zip(ts[before], node[before], kind[before], attr[before],
                                 strict=True):
            first.setdefault(int(a), int(when))
            if k == LABEL:
                labels.append(int(a))
            elif k != TOUCH:
                attr_kind[int(x)] = int(k)
                if a not in users.setdefault(int(x), []):
                    users[int(x)].append(int(a))
        # components: each attribute joins its first max_links accounts
        comp = {a: a for a in first}
        changed = True
        while changed:
            changed = False
            for x, accounts in users.items():
                if attr_kind[x] not in stream.links:
                    continue
                linked = accounts[:max_links]
                low = min(comp[a] for a in linked)
                for a in linked:
                    if comp[a] != low:
                        comp[a], changed = low, True
            for a in comp:  # follow to the smallest label
                while comp[comp[a]] != comp[a]:
                    comp[a] = comp[comp[a]]
        a = int(stream.q_node[q])
        row = out[q]
        if a in first:
            members = {b for b in comp if comp[b] == comp[a]}
            row[0] = len(members)
            row[1] = sum(1 for x, u in users.items()
                         if attr_kind[x] == DEVICE and members.intersection(u))
            row[2] = sum(1 for x, u in users.items()
                         if attr_kind[x] == IP and members.intersection(u))
            row[3] = sum(1 for b in labels if b in members)
            row[4] = len({b for b in labels if b in members})
            row[5] = (t - min(first[b] for b in members)) / US_PER_DAY
            row[6] = (t - first[a]) / US_PER_DAY
        else:
            row[0:7] = (1, 0, 0, 0, 0, 0, 0)
        for j, x in enumerate(stream.q_attr[q]):
            if x >= 0:
                row[7 + j] = len(users.get(int(x), []))
        for j, k in enumerate((DOCUMENT, FACE)):
            mine = [len(u) for x, u in users.items() if attr_kind[x] == k and a in u]
            if mine:
                row[10 + j] = max(mine)
    return out


@st.composite
def streams(draw: st.DrawFn) -> GraphStream:
    """Small random streams: few accounts, attributes and instants, so that accounts share
    attributes, components merge and updates tie."""
    n_nodes = draw(st.integers(1, 6))
    n_attrs = draw(st.integers(1, 8))
    attr_kind = draw(st.lists(st.sampled_from([DEVICE, IP, 2, 3, DOCUMENT, FACE]),
                              min_size=n_attrs, max_size=n_attrs))
    rows = draw(st.lists(st.tuples(st.integers(0, 12), st.integers(0, n_nodes - 1),
                                   st.integers(-2, n_attrs - 1)), max_size=40))
    queries = draw(st.lists(st.tuples(st.integers(0, 14), st.integers(0, n_nodes - 1),
                                      st.integers(-1, n_attrs - 1),
                                      st.integers(-1, n_attrs - 1)), min_size=1, max_size=12))
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    node = np.array([r[1] for r in rows], dtype=np.int64)
    code = np.array([r[2] for r in rows], dtype=np.int64)
    kind = np.where(code == -2, LABEL, np.where(code == -1, TOUCH,
                                                np.array(attr_kind)[np.maximum(code, 0)]))
    q_attr = np.array([[q[2], q[3], -1] for q in queries], dtype=np.int64).reshape(-1, 3)
    links = draw(st.frozensets(st.sampled_from([DEVICE, IP, 2, 3, DOCUMENT, FACE])))
    return GraphStream(ts=ts * US_PER_DAY // 4, node=node, kind=kind.astype(np.int64),
                       attr=np.where(code >= 0, code, -1),
                       q_ts=np.array([q[0] for q in queries], dtype=np.int64) * US_PER_DAY // 4,
                       q_node=np.array([q[1] for q in queries], dtype=np.int64),
                       q_attr=q_attr, n_nodes=n_nodes, n_attrs=n_attrs, links=links)


@settings(max_examples=100, deadline=None)
@given(stream=streams(), max_links=st.integers(1, 4))
def test_incremental_equals_from_scratch(stream: GraphStream, max_links: int) -> None:
    got = graph_features(stream, max_links=max_links)
    want = reference_features(stream, max_links)
    for j, name in enumerate(FEATURES):
        np.testing.assert_allclose(got[name], want[:, j], err_msg=name)


# -- tables --------------------------------------------------------------------------------------

def _ts(values: list[int]) -> pa.Array:
    """Minutes after T0 (few distinct values, so that rows tie)."""
    return pa.array([T0 + timedelta(minutes=v) for v in values], pa.timestamp("us", tz="UTC"))


def _pick(prefix: str, values: list[int]) -> pa.Array:
    return pa.array([None if v < 0 else f"{prefix}{v}" for v in values], pa.string())


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 32))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@st.composite
def datasets(draw: st.DrawFn) -> SimpleNamespace:
    """A tiny dataset with every table the graph reads."""
    small = st.integers(-1, 3)
    n_pay = draw(st.integers(1, 25))
    minute = st.integers(0, 20)
    pay = draw(st.lists(st.tuples(minute, st.integers(-1, 4), st.integers(0, 5), small, small,
                                  small), min_size=n_pay, max_size=n_pay))
    acc = draw(st.lists(st.tuples(minute, st.integers(0, 4), small, small, small, small),
                        max_size=5, unique_by=lambda r: r[1]))
    ev = draw(st.lists(st.tuples(minute, st.integers(0, 4), small, small, small), max_size=10))
    ses = draw(st.lists(st.tuples(minute, st.integers(0, 4), small, small, st.integers(0, 3)),
                        max_size=8))
    lab = draw(st.lists(st.tuples(st.integers(0, n_pay - 1), st.integers(0, 30)),
                        max_size=8))
    people = _unit(np.random.default_rng(draw(st.integers(0, 9))), 4)
    noise = _unit(np.random.default_rng(1), max(len(ses), 1)) * 0.15
    faces = people[[s[4] for s in ses]] + noise[:len(ses)]
    faces /= np.maximum(np.linalg.norm(faces, axis=1, keepdims=True), 1e-9)
    payments = pa.table({
        "payment_id": pa.array([f"p{i:03d}" for i in range(n_pay)], pa.string()),
        "ts": _ts([p[0] for p in pay]),
        "card_id": _pick("c", [p[2] for p in pay]), "account_id": _pick("a", [p[1] for p in pay]),
        "device_id": _pick("d", [p[3] for p in pay]), "ip": _pick("i", [p[4] for p in pay]),
        "email": _pick("e", [p[5] for p in pay])})
    accounts = pa.table({
        "account_id": _pick("a", [a[1] for a in acc]), "created_at": _ts([a[0] for a in acc]),
        "device_id": _pick("d", [a[2] for a in acc]), "ip": _pick("i", [a[3] for a in acc]),
        "email": _pick("e", [a[4] for a in acc]),
        "address_hash": _pick("h", [a[5] for a in acc])})
    events = pa.table({
        "account_id": _pick("a", [e[1] for e in ev]), "ts": _ts([e[0] for e in ev]),
        "device_id": _pick("d", [e[2] for e in ev]), "ip": _pick("i", [e[3] for e in ev]),
        "email": _pick("e", [e[4] for e in ev])})
    sessions = pa.table({
        "account_id": _pick("a", [s[1] for s in ses]), "created_at": _ts([s[0] for s in ses]),
        "device_id": _pick("d", [s[2] for s in ses]),
        "ip": _pick("i", [-1] * len(ses)),
        "document_number_hash": _pick("doc", [s[3] for s in ses]),
        "face_embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(faces.astype(np.float32).reshape(-1), pa.float32()), 32)})
    labels = pa.table({
        "payment_id": pa.array([f"p{i:03d}" for i, _ in lab], pa.string()),
        "is_fraud": pa.array([True] * len(lab), pa.bool_()),
        "reported_at": _ts([pay[i][0] + d for i, d in lab])})
    return SimpleNamespace(payments=payments, labels=labels, accounts=accounts,
                           account_events=events, verification_sessions=sessions)


def _until(data: SimpleNamespace, t: datetime) -> SimpleNamespace:
    """``data`` without anything that happened, or was reported, after ``t``."""
    def keep(table: pa.Table, column: str) -> pa.Table:
        return table.filter(pc.less_equal(table.column(column), pa.scalar(t, table.column(
            column).type)))
    return SimpleNamespace(payments=keep(data.payments, "ts"),
                           labels=keep(data.labels, "reported_at"),
                           accounts=keep(data.accounts, "created_at"),
                           account_events=keep(data.account_events, "ts"),
                           verification_sessions=keep(data.verification_sessions, "created_at"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), cut=st.integers(0, 20), max_links=st.integers(1, 3),
       kinds=st.sampled_from([KINDS, LINKING]))
def test_features_at_t_ignore_everything_after_t(data: SimpleNamespace, cut: int,
                                                 max_links: int, kinds: tuple[str, ...]) -> None:
    t = T0 + timedelta(minutes=cut)
    full = identity_graph_features(data, max_links=max_links, kinds=kinds)
    part = identity_graph_features(_until(data, t), max_links=max_links, kinds=kinds)
    full = full.filter(pc.less_equal(full.column("ts"), pa.scalar(t, full.column("ts").type)))
    assert full.column("payment_id").equals(part.column("payment_id"))
    for name in FEATURES:
        np.testing.assert_array_equal(full.column(name).to_numpy(), part.column(name).to_numpy(),
                                      err_msg=name)


@settings(max_examples=30, deadline=None)
@given(data=datasets(), kinds=st.sampled_from([KINDS, LINKING]))
def test_table_stream_matches_reference(data: SimpleNamespace, kinds: tuple[str, ...]) -> None:
    stream = graph_stream(data, kinds=kinds)
    got = graph_features(stream, max_links=2)
    want = reference_features(stream, 2)
    for j, name in enumerate(FEATURES):
        np.testing.assert_allclose(got[name], want[:, j], err_msg=name)


# -- the rules, one by one ---------------------------------------------------------------------

def _stream(rows: list[tuple[int, int, int, int]], queries: list[tuple[int, int, int]],
            n_nodes: int = 12, n_attrs: int = 4) -> GraphStream:
    """Updates (ts, node, kind, attr); queries (ts, node, device)."""
    a = np.array(rows, dtype=np.int64).reshape(-1, 4)
    q = np.array(queries, dtype=np.int64).reshape(-1, 3)
    q_attr = np.column_stack([q[:, 2], np.full(len(q), -1), np.full(len(q), -1)])
    return GraphStream(ts=a[:, 0], node=a[:, 1], kind=a[:, 2], attr=a[:, 3], q_ts=q[:, 0],
                       q_node=q[:, 1], q_attr=q_attr, n_nodes=n_nodes, n_attrs=n_attrs)


def test_labels_count_from_their_report_time_on() -> None:
    rows = [(1, 0, DEVICE, 0), (2, 1, DEVICE, 0), (10, 0, LABEL, -1)]
    out = graph_features(_stream(rows, [(9, 1, -1), (10, 1, -1), (11, 1, -1)]))
    assert out["graph_component_accounts"].tolist() == [2, 2, 2]
    # reported at 10: not yet seen by a payment at 10 (ties are blind), seen at 11
    assert out["graph_component_fraud_labels"].tolist() == [0, 0, 1]
    assert out["graph_component_fraud_accounts"].tolist() == [0, 0, 1]


def test_a_payment_does_not_see_itself_or_its_twin() -> None:
    rows = [(5, 0, DEVICE, 0), (5, 1, DEVICE, 0)]
    out = graph_features(_stream(rows, [(5, 0, 0), (5, 1, 0), (6, 1, 0)]))
    assert out["graph_accounts_per_device"].tolist() == [0, 0, 2]
    assert out["graph_component_accounts"].tolist() == [1, 1, 2]


def test_a_popular_attribute_stops_linking_but_is_still_counted() -> None:
    rows = [(t, t - 1, IP, 0) for t in range(1, 11)]  # ten accounts behind one IP
    out = graph_features(_stream(rows, [(20, 0, -1), (20, 9, -1)]), max_links=3)
    assert out["graph_component_accounts"].tolist() == [3, 1]
    assert out["graph_component_ips"].tolist() == [1, 1]  # used, if not linked
    q = graph_features(_stream(rows, [(20, 9, -1)], n_attrs=1), max_links=3)
    assert q["graph_account_age_days"][0] == pytest.approx((20 - 10) / US_PER_DAY)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: graph_features(_stream([], [(1, 0, -1)]), max_links=0), "max_links=0"),
    (lambda: graph_stream(SimpleNamespace(), kinds=("device", "shoe")), "unknown identity"),
    (lambda: face_ids(np.zeros(5)), "2-d array"),
])
def test_errors_say_what_to_do(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_faces_link_near_duplicates_only_and_only_backwards() -> None:
    rng = np.random.default_rng(3)
    people = _unit(rng, 5)
    who = np.array([0, 1, 0, 2, 1, 3, 0, 4])
    selfies = people[who] + 0.1 * _unit(rng, len(who))
    selfies /= np.linalg.norm(selfies, axis=1, keepdims=True)
    ids = face_ids(selfies)
    assert ids.tolist() == [0, 1, 0, 2, 1, 3, 0, 4]
    assert face_ids(selfies[:4]).tolist() == ids[:4].tolist()  # later selfies change nothing


def test_kinds_choose_what_links() -> None:
    data = SimpleNamespace(
        payments=pa.table({"payment_id": ["p1", "p2", "p3", "p4"], "ts": _ts([1, 2, 3, 4]),
                           "card_id": ["c1", "c2", "c3", "c3"],
                           "account_id": ["a1", "a2", None, None],  # c3 pays as a guest
                           "device_id": ["d1", "d1", "d1", "d1"],
                           "ip": ["i1", "i2", "i3", "i4"],
                           "email": pa.array([None] * 4, pa.string())}),
        labels=pa.table({"payment_id": pa.array([], pa.string()),
                         "is_fraud": pa.array([], pa.bool_()),
                         "reported_at": _ts([])}))
    linked = identity_graph_features(data, kinds=KINDS)
    assert linked.column("graph_component_accounts").to_pylist() == [1, 1, 1, 3]
    assert linked.column("graph_component_devices").to_pylist() == [0, 0, 0, 1]
    assert linked.column("graph_accounts_per_device").to_pylist() == [0, 1, 2, 3]
    alone = identity_graph_features(data, kinds=("ip",))
    assert alone.column("graph_component_accounts").to_pylist() == [1, 1, 1, 1]
    assert alone.column("graph_accounts_per_device").to_pylist() == [0, 1, 2, 3]  # counted
    assert alone.column("graph_component_ips").to_pylist() == [0, 0, 0, 1]
    assert alone.column("graph_component_devices").to_pylist() == [0, 0, 0, 1]  # used


# -- on the realistic world ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def ring_world():
    """The small world with ten times the rings (the preset has too few to see)."""
    from vigil.simulate import RealisticWorld
    from vigil.simulate.realistic._scenarios import default_scenarios

    scenarios = [replace(s, rate=0.6) if s.name == "synthetic_identity_ring" else s
                 for s in default_scenarios()]
    world = RealisticWorld(n_customers=400, n_merchants=120, scenarios=scenarios)
    return world.simulate(40, start="2024-01-01", seed=3)


def test_rings_share_faces_and_devices_on_the_realistic_world(ring_world) -> None:
    graph = identity_graph_features(ring_world)
    order = ring_world.payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")])
    assert graph.column("payment_id").equals(order.column("payment_id"))
    truth = ring_world.truth
    scenario = np.asarray(pc.take(truth.column("scenario"), pc.index_in(
        graph.column("payment_id"), truth.column("payment_id"))).to_numpy(zero_copy_only=False))
    ring, legit = scenario == "synthetic_identity_ring", scenario == "legit"
    assert ring.sum() > 20
    for name in ("graph_accounts_per_face", "graph_accounts_per_device"):
        v = graph.column(name).to_numpy(zero_copy_only=False)
        assert np.nanmedian(v[ring]) > np.nanmedian(v[legit]) + 1, name


@pytest.fixture(scope="module")
def graph_bundle(ring_world):
    """A small model on one card count and three of the identity graph's features."""
    from vigil.features import Count, FeatureSet
    from vigil.pipeline import default_train_window, graph_spec, prepare, train_bundle

    fs = FeatureSet("tiny", {"card": "card_id"}, [Count(by="card", window="1d")])
    prepared = prepare(ring_world, fs)
    spec = graph_spec(FEATURES[:3])
    bundle = train_bundle(prepared, default_train_window(prepared, delay_days=3),
                          params={"n_estimators": 20}, identity_graph=spec)
    return bundle, prepared, fs


def test_a_bundle_trains_on_graph_features_row_for_row(ring_world, graph_bundle) -> None:
    from vigil.pipeline import model_inputs

    bundle, prepared, _fs = graph_bundle
    assert bundle.feature_names == ["count_by_card_1d", *FEATURES[:3]]
    assert bundle.identity_graph["features"] == list(FEATURES[:3])
    inputs = model_inputs(bundle, prepared)
    graph = identity_graph_features(ring_world)
    for name in FEATURES[:3]:
        assert inputs.column(name).equals(graph.column(name)), name


def test_a_graph_bundle_saves_loads_and_scores_the_same(ring_world, graph_bundle,
                                                        tmp_path) -> None:
    import json

    from vigil._errors import ModelError
    from vigil.models import ModelBundle
    from vigil.pipeline import prepare, score_window

    bundle, prepared, fs = graph_bundle
    bundle.save(tmp_path / "b")
    loaded = ModelBundle.load(tmp_path / "b")
    assert loaded.identity_graph == bundle.identity_graph
    # scored again from the dataset alone: the graph is rebuilt from its accounts
    again = score_window(loaded, prepare(ring_world, fs))
    assert again.column("probability").equals(score_window(bundle, prepared).column(
        "probability"))
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    doc["identity_graph"]["features"] = list(FEATURES[3:6])
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="identity graph"):
        ModelBundle.load(tmp_path / "b")


def test_graph_features_are_refused_where_they_cannot_be_built(graph_bundle) -> None:
    from dataclasses import replace

    from vigil.pipeline import graph_spec, model_inputs
    from vigil.scoring import Scorer

    bundle, prepared, _fs = graph_bundle
    with pytest.raises(ConfigError, match="accounts"):
        model_inputs(bundle, replace(prepared, data=None, built={}))
    with pytest.raises(ConfigError, match="unknown identity-graph feature 'nope'"):
        graph_spec(["nope"])
    with pytest.raises(ConfigError, match="online scoring cannot build them"):
        Scorer(bundle)


def test_the_lift_benchmark_trains_the_three_models(tmp_path) -> None:
    """`vigil bench identity --only graph` on the small preset: the same features with and
    without the graph's, each a bundle built by the pipeline, and the tables written."""
    from vigil.bench._identity_graph import run_identity_graph_benchmark

    result = run_identity_graph_benchmark(
        preset="small", seed=7, out_dir=tmp_path,
        scenario_rates={"synthetic_identity_ring": 0.6},
        settings={"": {"n_estimators": 15, "early_stopping_rounds": None}})
    models = result["models"]
    assert list(models) == ["payments_realistic", "+ identity graph", "+ graph, local only"]
    base = models["payments_realistic"]["inputs"]
    assert models["+ identity graph"]["inputs"] == base + len(FEATURES)
    assert models["+ graph, local only"]["inputs"] == base + len(FEATURES) - 6
    assert result["graph"]["test_month"]
    assert (tmp_path / "identity_graph_small.md").read_text().count("identity graph") >= 2
