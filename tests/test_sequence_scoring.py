"""The sequence encoder in the scoring path: a bundle that carries it, the online state that
keeps each card's last payments, replay equal to offline, the service without torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from vigil.models import ModelBundle
from vigil.models.sequence import SequenceConfig, SequenceRuntime

torch = pytest.importorskip("torch", reason="pre-training needs pip install 'vigil[deep]'")

from vigil.features import payments_default  # noqa: E402
from vigil.models.sequence import (  # noqa: E402
    embed_payments,
    export_checkpoint_onnx,
    fit_checkpoint_pca,
    load_checkpoint,
    pretrain,
)
from vigil.pipeline import (  # noqa: E402
    default_train_window,
    model_inputs,
    prepare,
    score_window,
    train_bundle,
)
from vigil.scoring import Scorer  # noqa: E402

SMALL = SequenceConfig(seq_len=8, dim=16, n_layers=2, n_heads=2, hash_buckets=64,
                       chunk_len=32)


@pytest.fixture(scope="module")
def world(small_world):
    """The small world, with ties: every 7th payment of a card at its previous one's time."""
    payments = small_world.payments.sort_by([("card_id", "ascending"), ("ts", "ascending"),
                                             ("payment_id", "ascending")])
    cards = payments.column("card_id").to_pylist()
    ts = payments.column("ts").to_pylist()
    k = 0
    for i in range(1, len(ts)):
        k = k + 1 if cards[i] == cards[i - 1] else 0
        if k and k % 7 == 0:
            ts[i] = ts[i - 1]
    payments = payments.set_column(payments.schema.get_field_index("ts"), "ts",
                                   pa.array(ts, payments.schema.field("ts").type))
    return dataclasses.replace(small_world, payments=payments)


@pytest.fixture(scope="module")
def checkpoint(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("seqscore") / "encoder"
    pretrain(world.payments, out, config=SMALL, epochs=1, batch_size=32, lr=5e-3)
    export_checkpoint_onnx(out)
    fit_checkpoint_pca(out, world.payments, n_components=4)
    return out


@pytest.fixture(scope="module")
def prepared(world):
    return prepare(world, payments_default())


@pytest.fixture(scope="module")
def bundle(prepared, checkpoint):
    window = default_train_window(prepared, delay_days=3)
    return train_bundle(prepared, window, params={"n_estimators": 30}, sequence=checkpoint)


@pytest.fixture(scope="module")
def bundle_dir(bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seqbundle")
    bundle.save(folder)
    return folder


def test_the_onnx_batch_path_equals_torch(checkpoint, world):
    runtime = SequenceRuntime(checkpoint)
    encoder, _, _ = load_checkpoint(checkpoint)
    want = embed_payments(encoder, world.payments)
    got = runtime.embed_payments(world.payments)
    assert np.isnan(got).sum() == np.isnan(want).sum()
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(runtime.features_batch(world.payments),
                               runtime.pca.transform(want), atol=1e-5)


def test_a_bundle_carries_the_encoder(bundle, bundle_dir, prepared, checkpoint):
    assert bundle.sequence_names == ["seq_pc1", "seq_pc2", "seq_pc3", "seq_pc4"]
    assert bundle.feature_names == [*prepared.feature_set.names, *bundle.sequence_names]
    doc = json.loads((bundle_dir / "bundle.json").read_text())
    seq = doc["sequence"]
    assert seq["config"] == SequenceRuntime(checkpoint).config.to_dict()
    assert seq["history_rows"] == 14 and seq["features"] == bundle.sequence_names
    assert set(seq["files"]) == {"sequence.json", "encoder.onnx", "pca.safetensors"}
    assert sorted(p.name for p in (bundle_dir / "sequence").iterdir()) == [
        "encoder.onnx", "pca.safetensors", "sequence.json"]
    assert not list(bundle_dir.rglob("*.pkl")) and not list(bundle_dir.rglob("*.pt"))
    loaded = ModelBundle.load(bundle_dir)
    assert loaded.sequence_names == bundle.sequence_names
    inputs = model_inputs(loaded, prepared)
    np.testing.assert_array_equal(loaded.predict_proba(inputs), bundle.predict_proba(inputs))
    assert score_window(loaded, prepared).num_rows == prepared.payments.num_rows
    # a tampered encoder is refused
    onnx = bundle_dir / "sequence" / "encoder.onnx"
    data = onnx.read_bytes()
    try:
        onnx.write_bytes(data + b"\0")
        with pytest.raises(Exception, match="checksum"):
            ModelBundle.load(bundle_dir)
    finally:
        onnx.write_bytes(data)


def test_replay_through_the_scorer_equals_the_offline_batch(bundle, prepared):
    """Every payment, in time order, through the online state and the encoder under ONNX
    Runtime: the same principal components as the offline batch (ties included)."""
    scorer = Scorer(bundle)
    offline = model_inputs(bundle, prepared)
    names = bundle.sequence_names
    want = np.column_stack([offline.column(n).to_numpy(zero_copy_only=False) for n in names])
    rows = prepared.payments.to_pylist()  # in (ts, payment_id) order
    got = np.empty_like(want)
    ties = 0
    for i, row in enumerate(rows):
        features, _ = scorer.features(row)
        got[i] = [np.nan if features[n] is None else features[n] for n in names]
        ties += i > 0 and row["ts"] == rows[i - 1]["ts"] and row["card_id"] == rows[i - 1][
            "card_id"]
        scorer.record(row)
    assert ties > 20
    np.testing.assert_allclose(got, want, atol=1e-5)
    # and the online feature set's values are untouched by the sequence columns
    plain = offline.column(prepared.feature_set.names[0]).to_numpy(zero_copy_only=False)
    assert not np.isnan(plain).all()
    # the state keeps exactly the card's last history_rows payments
    sizes = scorer.online.state.sizes()
    cards = pc.count_distinct(prepared.payments.column("card_id")).as_py()
    assert sizes["payment_entities"] >= cards


def test_a_score_has_sequence_timing_and_reasons(bundle, prepared):
    scorer = Scorer(bundle)
    rows = prepared.payments.to_pylist()
    for row in rows[:-1]:
        scorer.record(row)
    result = scorer.score(rows[-1])
    assert set(result.timing_us) == {"features", "sequence", "model", "rules", "total"}
    assert all(result.features[n] is not None for n in bundle.sequence_names)
    for reason in result.reasons:
        if reason.feature in bundle.sequence_names:
            assert reason.sentence == "the card's recent payment pattern"


def test_a_bundle_without_a_sequence_scores_as_before(small_bundle, small_bundle_dir,
                                                      small_world):
    assert small_bundle.sequence is None and small_bundle.sequence_names == []
    assert "sequence" not in json.loads((small_bundle_dir / "bundle.json").read_text())
    row = small_world.payments.sort_by("ts").slice(0, 1).to_pylist()[0]
    result = Scorer(ModelBundle.load(small_bundle_dir)).score(row)
    assert set(result.timing_us) == {"features", "model", "rules", "total"}
    assert result.probability == Scorer(small_bundle).score(row).probability


def test_the_service_scores_with_the_encoder_without_torch(bundle_dir, tmp_path):
    code = f"""
import sys
from datetime import datetime, timedelta, UTC
from fastapi.testclient import TestClient
from vigil.models import ModelBundle
from vigil.serving import ScoringService, create_app
from vigil.store import Store

store = Store.open({str(tmp_path / "v.db")!r}, migrate=True)
key = store.create_api_key("score", "k")[1]
bundle = ModelBundle.load({str(bundle_dir)!r})
t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
service = ScoringService(store, bundle)
with TestClient(create_app(service)) as client:
    for i in range(5):
        body = {{"payment_id": f"p{{i}}", "ts": (t0 + timedelta(minutes=i)).isoformat(),
                 "amount": 20.0 + i, "currency": "EUR", "card_id": "card_1",
                 "customer_id": "cus_1", "merchant_id": "m_1", "terminal_id": f"t_{{i % 2}}"}}
        r = client.post("/v1/payments", json=body, headers={{"Authorization": "Bearer " + key}})
        assert r.status_code == 200, r.text
        assert "sequence" in r.json()["timing_us"], r.json()
service.close()
# a restart loads the snapshot, which keeps the card's last payments
again = ScoringService(store, bundle)
_, last = again.online.features_and_last(
    {{"payment_id": "q", "ts": t0 + timedelta(hours=1), "card_id": "card_1"}}, "card_id")
assert [r["payment_id"] for r in last] == ["p0", "p1", "p2", "p3", "p4"], last
again.close()
store.close()
assert "torch" not in sys.modules, "torch was imported"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_train_command_with_a_sequence_encoder(world, checkpoint, tmp_path):
    from click.testing import CliRunner

    from vigil.cli import main
    from vigil.events import write_dataset

    write_dataset(world, tmp_path / "data")
    out = tmp_path / "model"
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--out",
                                       str(out), "--delay", "3", "--param", "n_estimators=10",
                                       "--sequence", str(checkpoint)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert ModelBundle.load(out).sequence_names == ["seq_pc1", "seq_pc2", "seq_pc3", "seq_pc4"]
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--out",
                                       str(tmp_path / "m2"), "--sequence", str(tmp_path)])
    assert result.exit_code == 1 and "not a sequence model checkpoint" in result.stderr
