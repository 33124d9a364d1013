"""The command line: the happy path end to end, and one clear line for every user mistake."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vigil.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "world"
    result = run("simulate", "--days", "50", "--cards", "300", "--terminals", "1500", "--seed",
                 "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def bundle(world) -> Path:
    out = world.parent / "model"
    result = run("train", "--data", str(world), "--out", str(out), "--param",
                 "n_estimators=60", "--param", "max_bin=256")
    assert result.exit_code == 0, result.output + result.stderr
    return out


def test_simulate_writes_a_dataset(world):
    assert (world / "labels.parquet").is_file()
    assert (world / "truth.parquet").is_file()
    days = sorted(p.name for p in (world / "payments").iterdir())
    assert len(days) == 50 and days[0].startswith("date=2024-01-01")
    info = json.loads((world / "dataset.json").read_text())
    assert info["seed"] == 3


def test_train_score_evaluate_end_to_end(world, bundle, tmp_path):
    doc = json.loads((bundle / "bundle.json").read_text())
    window = doc["training"]["window"]
    # the default window ends a label delay before the data's end, its labels as of the end
    assert window["end"].startswith("2024-02-13") and window["label_cutoff"].startswith(
        "2024-02-20")
    scores = tmp_path / "scores.parquet"
    result = run("score", "--bundle", str(bundle), "--data", str(world), "--start",
                 "2024-02-10", "--out", str(scores))
    assert result.exit_code == 0, result.stderr
    table = pq.read_table(scores)
    assert table.column_names == ["payment_id", "ts", "probability", "risk_score", "risk_level"]
    assert table.num_rows > 0
    scores_ok = table.column("risk_score").to_pylist()
    assert min(scores_ok) >= 0 and max(scores_ok) <= 100


def test_evaluate_refuses_a_window_the_model_has_seen(world, bundle):
    result = run("evaluate", "--bundle", str(bundle), "--data", str(world), "--start",
                 "2024-02-01")
    assert result.exit_code == 1
    assert "before the model's label cutoff" in result.stderr


def test_prequential_train_then_evaluate(world, tmp_path):
    model = tmp_path / "m"
    result = run("train", "--data", str(world), "--out", str(model), "--train-start",
                 "2024-01-10", "--train-end", "2024-02-05", "--param", "n_estimators=40",
                 "--param", "max_bin=256")
    assert result.exit_code == 0, result.stderr
    metrics = tmp_path / "m.json"
    result = run("evaluate", "--bundle", str(model), "--data", str(world), "--json",
                 str(metrics))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(metrics.read_text())
    assert doc["window"]["start"].startswith("2024-02-12")  # label cutoff = end + 7 days
    assert 0.5 < doc["metrics"]["auc"] <= 1.0
    assert "compromised_terminal" in doc["recall_by_scenario@1%fpr"]
    assert "average precision" in result.output


def test_features_build_and_list(world, tmp_path):
    out = tmp_path / "f.parquet"
    result = run("features", "build", "--data", str(world), "--features", "handbook", "--out",
                 str(out))
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(out).num_columns == 17
    listing = run("features", "list")
    assert "amount_sum" not in listing.output and "count_by_card_1d" in listing.output
    assert "EXCLUDE TIES" in run("features", "sql", "--features", "handbook").output


def _payments_csv(path: Path, **overrides) -> Path:
    rows = {
        "payment_id": ["p1", "p2"],
        "ts": ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"],
        "amount": ["10.5", "20"],
        "currency": ["EUR", "EUR"],
        "card_id": ["c1", "c1"],
        "customer_id": ["u1", "u1"],
        "merchant_id": ["m1", "m2"],
    }
    rows.update(overrides)
    rows = {k: v for k, v in rows.items() if v is not None}
    header = ",".join(rows)
    lines = [",".join(vals) for vals in zip(*rows.values(), strict=True)]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


BAD_INPUTS = [
    ("missing file", lambda d: ["train", "--data", str(d / "nope"), "--out", str(d / "o")],
     "nope: no such file or folder"),
    ("not parquet", lambda d: ["score", "--bundle", "{bundle}", "--input",
                               str(_garbage(d / "x.parquet")), "--out", str(d / "o.parquet")],
     "x.parquet: not a readable Parquet file"),
    ("unknown type", lambda d: ["train", "--data", str(_touch(d / "x.txt")), "--out",
                                str(d / "o")], "unknown file type '.txt'"),
    ("missing column", lambda d: ["score", "--bundle", "{bundle}", "--input",
                                  str(_payments_csv(d / "p.csv", amount=None)), "--labels",
                                  "{labels}", "--out", str(d / "o.parquet")],
     "missing required column(s) amount"),
    ("mistyped column", lambda d: ["score", "--bundle", "{bundle}", "--input",
                                   str(_payments_csv(d / "p.csv", amount=["10", "ten"])),
                                   "--labels", "{labels}", "--out", str(d / "o.parquet")],
     "row 2, column 'amount': 'ten' is not a number"),
    ("null timestamp", lambda d: ["score", "--bundle", "{bundle}", "--input",
                                  str(_payments_csv(d / "p.csv", ts=["", "2024-01-01"])),
                                  "--labels", "{labels}", "--out", str(d / "o.parquet")],
     "row 1, column 'ts': value is missing"),
    ("bad timestamp", lambda d: ["score", "--bundle", "{bundle}", "--input",
                                 str(_payments_csv(d / "p.csv", ts=["2024-01-01", "yesterday"])),
                                 "--labels", "{labels}", "--out", str(d / "o.parquet")],
     "row 2, column 'ts': 'yesterday' is not a timestamp"),
    ("negative amount", lambda d: ["score", "--bundle", "{bundle}", "--input",
                                   str(_payments_csv(d / "p.csv", amount=["-3", "1"])),
                                   "--labels", "{labels}", "--out", str(d / "o.parquet")],
     "row 1, column 'amount': -3.0: amount must be a finite number >= 0"),
    ("unknown feature", lambda d: ["features", "sql", "--features",
                                   str(_write(d / "f.toml", BAD_KIND))],
     "feature 1: unknown feature kind 'cnt'"),
    ("bad window", lambda d: ["features", "sql", "--features",
                              str(_write(d / "f.toml", BAD_WINDOW))],
     "window '90x' is not a duration"),
    ("bad param", lambda d: ["train", "--data", "{world}", "--out", str(d / "o"), "--param",
                             "depth=3"], "unknown model parameter 'depth'"),
    ("bad date", lambda d: ["train", "--data", "{world}", "--out", str(d / "o"),
                            "--train-start", "last tuesday"], "--train-start: 'last tuesday'"),
]
BAD_KIND = 'name = "x"\n[entity_keys]\ncard = "card_id"\n[[features]]\nkind = "cnt"\n'
BAD_WINDOW = ('name = "x"\n[entity_keys]\ncard = "card_id"\n[[features]]\nkind = "count"\n'
              'by = "card"\nwindow = "90x"\n')


def _garbage(p: Path) -> Path:
    p.write_bytes(b"\x00\x01 not a parquet file at all")
    return p


def _touch(p: Path) -> Path:
    p.write_text("hello")
    return p


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


@pytest.mark.parametrize(("case", "make_args", "message"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gives_one_clear_line(case, make_args, message, tmp_path, bundle, world):
    labels = tmp_path / "labels.csv"
    labels.write_text("payment_id,kind,is_fraud,reported_at\n")
    args = [a.format(bundle=bundle, world=world, labels=labels) for a in make_args(tmp_path)]
    result = run(*args)
    assert result.exit_code == 1, (case, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]], lines  # progress lines may come first; one error, last
    assert message in lines[-1], lines[-1]
    assert "Traceback" not in result.output + result.stderr


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vigil", "train", "--data",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'missing'}: no such file or folder")


def test_every_command_has_help_with_an_example():
    commands = [["simulate"], ["train"], ["score"], ["evaluate"], ["demo"], ["features"],
                ["features", "build"], ["features", "list"], ["features", "sql"], ["bench"],
                ["bench", "handbook"], ["bench", "speed"], ["bench", "scenarios"]]
    for cmd in commands:
        result = run(*cmd, "--help")
        assert result.exit_code == 0
        assert "Example" in result.output and "vigil " in result.output, cmd


def test_score_input_file_needs_labels_for_label_aware_features(world, bundle, tmp_path):
    data = pq.read_table(world / "payments")
    pq.write_table(data.select([c for c in data.column_names if c != "date"]),
                   tmp_path / "p.parquet")
    result = run("score", "--bundle", str(bundle), "--input", str(tmp_path / "p.parquet"),
                 "--out", str(tmp_path / "s.parquet"))
    assert result.exit_code == 1 and "pass --labels" in result.stderr
    result = run("score", "--bundle", str(bundle), "--input", str(tmp_path / "p.parquet"),
                 "--labels", str(world / "labels.parquet"), "--out", str(tmp_path / "s.parquet"))
    assert result.exit_code == 0, result.stderr
    scores = pq.read_table(tmp_path / "s.parquet")
    assert scores.num_rows == data.num_rows
    assert pa.types.is_int64(scores.schema.field("risk_score").type)


def test_train_with_the_identity_graph(world, tmp_path):
    """The identity graph needs accounts: a Handbook-style dataset is refused in one line; a
    realistic one trains a bundle whose inputs end with the graph's features."""
    refused = run("train", "--data", str(world), "--identity-graph", "--out",
                  str(tmp_path / "no"))
    assert refused.exit_code == 1 and "no accounts table" in refused.stderr
    assert "Traceback" not in refused.output + refused.stderr
    realistic = tmp_path / "realistic"
    made = run("simulate", "--preset", "small", "--days", "40", "--seed", "2", "--out",
               str(realistic))
    assert made.exit_code == 0, made.output
    out = tmp_path / "graph-model"
    result = run("train", "--data", str(realistic), "--identity-graph", "--param",
                 "n_estimators=20", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    doc = json.loads((out / "bundle.json").read_text())
    from vigil.identity._graph import FEATURES

    assert doc["identity_graph"]["features"] == list(FEATURES)
    assert doc["model"]["feature_names"][-len(FEATURES):] == list(FEATURES)


def test_serve_refuses_a_bundle_with_identity_graph_features(bundle, tmp_path):
    import shutil

    folder = tmp_path / "graph-bundle"
    shutil.copytree(bundle, folder)
    doc = json.loads((folder / "bundle.json").read_text())
    doc["identity_graph"] = {"features": [], "max_links": 8, "kinds": ["address"]}
    (folder / "bundle.json").write_text(json.dumps(doc))
    result = run("serve", "--bundle", str(folder), "--store", str(tmp_path / "v.db"))
    assert result.exit_code == 1
    assert "identity graph" in result.stderr and "Traceback" not in result.stderr
