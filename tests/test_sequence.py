"""The sequence model: tokens, point in time, chunking, checkpoints, ONNX, the CLI."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from vigil import ConfigError, ModelError
from vigil.events import TIMESTAMP, EventData, empty_labels, write_dataset
from vigil.models.sequence import (
    EmbeddingPCA,
    SequenceConfig,
    SequenceRuntime,
    chunk_index,
    gather,
    resolve_fields,
    tokenize,
    window_inputs,
)

torch = pytest.importorskip("torch", reason="the sequence model needs pip install 'vigil[deep]'")

from vigil.cli import main  # noqa: E402
from vigil.models.sequence import (  # noqa: E402
    SequenceClassifier,
    SequenceEncoder,
    embed_payments,
    embed_tokens,
    export_checkpoint_onnx,
    export_onnx,
    finetune,
    load_checkpoint,
    predict_logits,
    pretrain,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
SMALL = SequenceConfig(seq_len=8, dim=16, n_layers=2, n_heads=2, hash_buckets=64,
                       chunk_len=16)


def make_payments(n_cards: int = 12, per_card: int = 40, seed: int = 0) -> pa.Table:
    """Cards with a few habitual terminals, devices and IPs; two payments of card c0 share
    a timestamp."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cards):
        t = START + timedelta(hours=float(rng.uniform(0, 24)))
        terminals = [f"t{rng.integers(0, 30)}" for _ in range(4)]
        for _ in range(per_card):
            t += timedelta(seconds=float(rng.exponential(6 * 3600)))
            rows.append({
                "ts": t, "amount": float(np.round(rng.lognormal(3.5, 1.0), 2)),
                "card_id": f"c{c}", "customer_id": f"c{c}",
                "terminal_id": terminals[rng.integers(0, 4)] if rng.random() < 0.8
                else f"t{rng.integers(0, 30)}",
                "device_id": f"d{c}-{rng.integers(0, 2)}",
                "ip": f"ip{rng.integers(0, 50)}",
                "channel": ["card_present", "card_not_present"][rng.integers(0, 2)],
                "card_country": "FR", "ip_country": ["FR", "DE"][int(rng.random() < 0.2)],
            })
    rows[5]["ts"] = rows[4]["ts"]  # a tie
    for i, r in enumerate(rows):
        r["payment_id"] = f"p{i:05d}"
        r["merchant_id"] = r["terminal_id"]
        r["currency"] = "EUR"
    order = rng.permutation(len(rows))  # the table need not be in time order
    cols = {k: [rows[i][k] for i in order] for k in rows[0]}
    return pa.table({k: pa.array(v, TIMESTAMP if k == "ts" else None) for k, v in cols.items()})


@pytest.fixture(scope="module")
def payments() -> pa.Table:
    return make_payments()


@pytest.fixture(scope="module")
def config(payments) -> SequenceConfig:
    return resolve_fields(payments, SMALL)


@pytest.fixture(scope="module")
def encoder(config) -> SequenceEncoder:
    torch.manual_seed(0)
    return SequenceEncoder(config).eval()


@pytest.fixture(scope="module")
def checkpoint(payments, tmp_path_factory):
    """A checkpoint pre-trained for two epochs, exported to ONNX."""
    out = tmp_path_factory.mktemp("seq") / "encoder"
    pretrain(payments, out, config=SMALL, epochs=2, batch_size=8, lr=5e-3)
    export_checkpoint_onnx(out)
    return out


def rows_of(payments: pa.Table) -> list[dict]:
    return sorted(payments.to_pylist(), key=lambda r: (r["card_id"], r["ts"], r["payment_id"]))


# --------------------------------------------------------------------------- config, tokens


@pytest.mark.parametrize(("changes", "message"), [
    ({"seq_len": 1}, "seq_len=1: at least 2"),
    ({"dim": 10, "n_heads": 4}, "dim=10 must be a positive multiple of n_heads=4"),
    ({"chunk_len": 8, "seq_len": 16}, "chunk_len=8: at least seq_len=16"),
    ({"n_layers": 9, "seq_len": 8}, "n_layers=9: between 1 and seq_len - 1"),
])
def test_config_errors_say_what_is_wrong(changes, message):
    with pytest.raises(ModelError, match=message):
        SequenceConfig(**changes)


def test_layer_reaches_add_up_to_the_sequence_length():
    for seq_len, layers in [(32, 2), (8, 3), (5, 4), (64, 3)]:
        c = SequenceConfig(seq_len=seq_len, n_layers=layers, chunk_len=max(64, seq_len))
        assert sum(c.reach(i) for i in range(layers)) == seq_len - 1
    assert SequenceConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ModelError, match="unknown key"):
        SequenceConfig.from_dict({"dims": 3})


def test_fields_follow_the_columns(payments):
    everything = resolve_fields(payments, SMALL).fields
    assert everything == ("amount", "gap", "hour", "weekday", "merchant", "terminal",
                          "merchant_new", "terminal_new", "device_new", "ip_new", "channel",
                          "ip_country_match")
    bare = payments.select(["payment_id", "ts", "amount", "card_id", "terminal_id"])
    assert resolve_fields(bare, SMALL).fields == ("amount", "gap", "hour", "weekday",
                                                  "terminal", "terminal_new")
    with pytest.raises(ModelError, match="unknown token field 'colour'"):
        resolve_fields(bare, SMALL.replace(fields=["colour"]))
    with pytest.raises(Exception, match="token field 'ip_new' needs column"):
        resolve_fields(bare, SMALL.replace(fields=["ip_new"]))


def test_token_values_by_hand():
    t0 = START
    table = pa.table({
        "payment_id": ["a", "b", "c", "d"],
        "ts": pa.array([t0, t0 + timedelta(seconds=100), t0 + timedelta(seconds=100),
                        t0 + timedelta(hours=2)], TIMESTAMP),
        "amount": [0.0, 9.0, 1000.0, 9.0],
        "card_id": ["k"] * 4,
        "terminal_id": ["x", "y", "x", "y"],
    })
    config = resolve_fields(table, SMALL.replace(fields=["amount", "gap", "hour", "weekday",
                                                        "terminal_new"]))
    tok = tokenize(table, config)
    amount, gap, hour, weekday, new = tok.cat.T
    assert amount.tolist() == [2, 2 + 9, 2 + 27, 2 + 9]  # floor(4 · log1p(amount)) + 2
    # b and c share a time: both see only a (gap 100 s), never each other
    assert gap.tolist() == [0, 2 + 9, 2 + 9, 2 + 17]  # d: 7,100 s after c
    assert tok.order.tolist() == [0, 1, 1, 3]
    assert new.tolist() == [3, 3, 2, 2]  # c's terminal x was a's; d's y was b's
    assert hour.tolist() == [2, 2, 2, 4] and weekday.tolist() == [2] * 4  # Monday 00:00 UTC


def test_windows_own_every_payment_once_with_its_context(config, payments):
    tok = tokenize(payments, config)
    for owned in (None, 3):
        index, own = chunk_index(tok, owned=owned)
        owners = index[own]
        assert sorted(owners.tolist()) == list(range(len(tok)))
        for k, j in zip(*np.nonzero(own), strict=True):
            p = index[k, j]
            n_ctx = min(config.context, p - tok.first[p])  # the card's payments before it
            assert index[k, j - n_ctx:j + 1].tolist() == list(range(p - n_ctx, p + 1))
    select = np.zeros(len(tok), dtype=bool)
    select[::7] = True
    index, own = chunk_index(tok, select=select)
    assert sorted(index[own].tolist()) == np.flatnonzero(select).tolist()


def test_one_payment_inputs_equal_the_batch_path(config, payments):
    tok = tokenize(payments, config)
    rows = payments.to_pylist()
    for p in (0, 5, 30, len(tok) - 1):
        history = [rows[tok.rows[q]] for q in range(tok.first[p], p)]
        x = window_inputs(history, rows[tok.rows[p]], config)
        n = x["cat"].shape[1]
        assert n == min(config.seq_len, p - tok.first[p] + 1)
        assert np.array_equal(x["cat"][0], tok.cat[p - n + 1:p + 1])
        assert np.array_equal(x["num"][0], tok.num[p - n + 1:p + 1])


# --------------------------------------------------------------------------- point in time


def test_an_embedding_uses_only_earlier_payments(encoder, payments):
    base = embed_payments(encoder, payments)
    rows = rows_of(payments)
    card = [r for r in rows if r["card_id"] == "c3"]
    pivot = card[20]
    ids = payments.column("payment_id").to_pylist()
    ts = payments.column("ts").to_pylist()
    earlier = np.array([r["card_id"] == "c3" and (t, i) < (pivot["ts"], pivot["payment_id"])
                        for r, t, i in zip(payments.to_pylist(), ts, ids, strict=True)])
    later = np.array([r["card_id"] == "c3" and t > pivot["ts"]
                      for r, t in zip(payments.to_pylist(), ts, strict=True)])
    # change a later payment's amount, terminal and time (still later)
    target = ids.index(card[25]["payment_id"])
    amounts = payments.column("amount").to_pylist()
    amounts[target] = 9999.0
    terminals = payments.column("terminal_id").to_pylist()
    terminals[target] = "elsewhere"
    ts[target] = ts[target] + timedelta(minutes=1)
    changed = payments.set_column(payments.schema.get_field_index("amount"), "amount",
                                  pa.array(amounts))
    changed = changed.set_column(changed.schema.get_field_index("terminal_id"), "terminal_id",
                                 pa.array(terminals))
    changed = changed.set_column(changed.schema.get_field_index("ts"), "ts",
                                 pa.array(ts, TIMESTAMP))
    after = embed_payments(encoder, changed)
    assert np.array_equal(base[earlier], after[earlier])  # bit for bit
    others = payments.column("card_id").to_numpy(zero_copy_only=False) != "c3"
    assert np.array_equal(base[others], after[others])
    assert not np.allclose(base[later], after[later])  # later payments do see it


def test_payments_at_the_same_time_do_not_see_each_other(encoder, payments):
    tok = tokenize(payments, encoder.config)
    tie = np.flatnonzero(np.r_[False, np.diff(tok.order) == 0])[0]  # second of the tie
    a, b = tok.rows[tie - 1], tok.rows[tie]
    base = embed_payments(encoder, payments)
    amounts = payments.column("amount").to_pylist()
    amounts[a] = amounts[a] * 50 + 1  # a comes first in the batch order: b must not see it
    changed = payments.set_column(payments.schema.get_field_index("amount"), "amount",
                                  pa.array(amounts))
    after = embed_payments(encoder, changed)
    assert np.array_equal(base[b], after[b])
    assert not np.allclose(base[a], after[a])


def test_windowing_does_not_change_embeddings(encoder, payments):
    tok = tokenize(payments, encoder.config)
    wide = embed_tokens(encoder, tok)
    narrow = SequenceEncoder(encoder.config.replace(chunk_len=9))
    narrow.load_state_dict(encoder.state_dict())
    tok_narrow = tokenize(payments, narrow.config)
    assert chunk_index(tok_narrow)[0].shape[1] == 9
    assert np.allclose(wide, embed_tokens(narrow, tok_narrow), atol=1e-5)


# --------------------------------------------------------------------------- train, save, serve


def test_pretraining_writes_a_checkpoint_without_pickle(checkpoint):
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names == ["encoder.onnx", "model.safetensors", "optimizer.safetensors",
                     "sequence.json"]
    doc = json.loads((checkpoint / "sequence.json").read_text())
    assert doc["config"]["fields"] and doc["training"]["done"]
    assert len(doc["metrics"]["epochs"]) == 2 and doc["metrics"]["best_valid_loss"] > 0
    encoder, heads, _ = load_checkpoint(checkpoint, heads=True)
    assert heads is not None and encoder.config.dim == 16


def test_resume_continues_exactly(payments, tmp_path):
    straight = tmp_path / "straight"
    pretrain(payments, straight, config=SMALL, epochs=2, batch_size=8, seed=1)
    stopped = tmp_path / "stopped"
    pretrain(payments, stopped, config=SMALL, epochs=2, batch_size=8, seed=1,
             max_minutes=1e-9)  # stops after the first batch
    doc = json.loads((stopped / "sequence.json").read_text())
    assert doc["training"]["state"] == {**doc["training"]["state"], "epoch": 0, "batch": 1}
    pretrain(payments, stopped, epochs=2, resume=True)
    a, _, _ = load_checkpoint(straight)
    b, _, _ = load_checkpoint(stopped)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), name
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        pretrain(payments, straight, config=SMALL, epochs=1)


def test_onnx_matches_torch(encoder, payments, tmp_path):
    import onnxruntime as ort

    path = export_onnx(encoder, tmp_path / "e.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tok = tokenize(payments, encoder.config)
    index, _ = chunk_index(tok)
    for batch in (gather(tok, index[:5]), gather(tok, index[5:6, -3:])):
        with torch.no_grad():
            want = encoder(*(torch.from_numpy(batch[k]) for k in ("cat", "num", "order")))
        got = session.run(["embedding"], batch)[0]
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)


def test_one_payment_through_onnx_equals_the_batch_embedding(checkpoint, payments):
    encoder, _, _ = load_checkpoint(checkpoint)
    batch = embed_payments(encoder, payments)
    runtime = SequenceRuntime(checkpoint)
    rows = rows_of(payments)
    position = {r: i for i, r in enumerate(payments.column("payment_id").to_pylist())}
    for p in (0, 7, 200, len(rows) - 1):
        history = [r for r in rows[:p] if r["card_id"] == rows[p]["card_id"]]
        got = runtime.embed_one(history, rows[p])
        np.testing.assert_allclose(got, batch[position[rows[p]["payment_id"]]], atol=1e-5)


def test_the_scoring_path_does_not_import_torch(checkpoint, payments):
    rows = rows_of(payments)
    case = json.dumps({"history": rows[:30], "payment": rows[30]}, default=str)
    code = (
        "import json, sys\n"
        "from datetime import datetime\n"
        "from vigil.models.sequence import SequenceRuntime\n"
        f"case = json.loads({case!r})\n"
        "for r in [*case['history'], case['payment']]:\n"
        "    r['ts'] = datetime.fromisoformat(r['ts'])\n"
        f"e = SequenceRuntime({str(checkpoint)!r}).embed_one(case['history'], case['payment'])\n"
        "assert e.shape == (16,), e.shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_pca_round_trips(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 6)) * np.arange(6, 0, -1)
    pca = EmbeddingPCA(3).fit(X)
    back = EmbeddingPCA.load(pca.save(tmp_path / "p.safetensors"))
    assert np.array_equal(pca.transform(X), back.transform(X))
    assert back.names() == ["seq_pc1", "seq_pc2", "seq_pc3"]
    assert np.isnan(pca.transform(np.full((1, 6), np.nan))).all()


def test_finetuning_learns_a_signal(encoder, payments):
    from sklearn.metrics import roc_auc_score

    tok = tokenize(payments, encoder.config)
    y = (tok.num[:, 0] > np.log1p(100) / 5).astype(np.float32)  # "fraud": above 100
    train = np.arange(len(tok)) % 3 != 0
    model = finetune(encoder, tok, train, y, epochs=6, lr=1e-2, encoder_lr=3e-3,
                     batch_size=8, owned=8)
    assert isinstance(model, SequenceClassifier)
    logits = predict_logits(model, tok, ~train)
    assert np.isnan(logits[train]).all()
    assert roc_auc_score(y[~train], logits[~train]) > 0.85


# --------------------------------------------------------------------------- the CLI


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_pretrain_command_end_to_end(payments, tmp_path):
    write_dataset(EventData(payments, empty_labels()), tmp_path / "data")
    out = tmp_path / "enc"
    common = ["--out", str(out), "--seq-len", "8", "--dim", "16", "--batch-size", "8"]
    result = run("pretrain", str(tmp_path / "data"), *common, "--epochs", "1", "--pca", "4",
                 "--fields", "amount,gap,terminal,device_new", "--until", "2024-03-01")
    assert result.exit_code == 0, result.output
    assert "checkpoint ->" in result.output and "epoch 1/1" in result.stderr
    doc = json.loads((out / "sequence.json").read_text())
    assert set(doc["files"]) == {"weights", "optimizer", "onnx", "pca"}
    assert doc["config"]["fields"] == ["amount", "gap", "terminal", "device_new"]
    assert SequenceRuntime(out).features_one([], payments.to_pylist()[0]).shape == (4,)
    result = run("pretrain", str(tmp_path / "data"), "--out", str(out), "--resume",
                 "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "sequence.json").read_text())["training"]["state"]["epoch"] == 2
    result = run("pretrain", str(tmp_path / "data"), *common)
    assert result.exit_code == 1 and "already holds a checkpoint" in result.stderr
    result = run("pretrain", str(tmp_path / "data"), "--out", str(out), "--resume",
                 "--dim", "32")
    assert result.exit_code == 1 and "config differs" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_one_clear_line(tmp_path):
    result = run("pretrain", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: --device cuda: PyTorch sees no CUDA GPU here "
                                     "(torch.cuda.is_available() is False); use --device cpu")


def test_sequence_commands_have_help_with_an_example(tmp_path):
    for cmd in (["pretrain"], ["bench", "sequence"]):
        result = run(*cmd, "--help")
        assert result.exit_code == 0 and "Example" in result.output and "vigil " in \
            result.output
    result = run("bench", "sequence", "--data", str(tmp_path / "none.parquet"))
    assert result.exit_code == 1 and "no such file" in result.stderr
