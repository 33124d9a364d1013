"""The sequence model on the Fraud Detection Handbook: does it make the GBDT better?

Same protocol as ``vigil bench handbook`` (``_handbook.py``): seven days of training, a
seven-day label delay, seven days of test, known compromised cards removed; choices made on
the four validation folds, the four test folds reported once. Compared:

``gbdt``
    vigil's default features and XGBoost, with the parameters ``vigil bench handbook``
    chose on validation (this row reproduces its ``vigil`` row).
``gbdt_sequence``
    the same, plus the encoder's per-payment embeddings: their first k principal
    components or the raw embedding, k chosen on validation AP.
``sequence_head``
    the pre-trained encoder with a fraud head, fine-tuned on each fold's training week
    (labels known at the test start, as the GBDT's); the best setting of
    ``FINETUNE_GRID`` on validation AP (one setting: each costs minutes per fold).
``sequence_head_scratch``
    the same head and setting on a randomly initialised encoder: what pre-training buys.

The encoder is pre-trained without labels on payments before the first test week
(2018-08-08), so no test payment is ever seen, even unlabelled. Validation weeks fall inside
that period: validation figures of the sequence variants are slightly optimistic; the test
figures are not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.bench._handbook import (
    METRICS,
    PUBLISHED,
    FoldData,
    _Runner,
    file_sha256,
    read_handbook_file,
)
from vigil.bench._machine import machine_info, machine_line
from vigil.evaluation import summarize_folds
from vigil.features import payments_default
from vigil.models import RiskModel
from vigil.pipeline import prepare

PRETRAIN_UNTIL = datetime(2018, 8, 8, tzinfo=UTC)  # the first test week starts here
# merchant_id is terminal_id in the Handbook; it has no device, IP, channel or countries
FIELDS = ("amount", "gap", "hour", "weekday", "terminal", "terminal_new")
# chosen on the validation folds by `vigil bench handbook` (bench/results/handbook.json)
GBDT_PARAMS = {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 3,
               "min_child_weight": 3, "calibration": None, "early_stopping_rounds": None,
               "seed": 0}
EMBEDDING_CHOICES = (4, 8, 16, 0)  # principal components; 0: the raw embedding
# one setting: fine-tuning costs a minute or more per fold on two cores
FINETUNE_GRID = [{"epochs": 3, "lr": 1e-2, "encoder_lr": 1e-3, "batch_size": 32}]
HANDBOOK_ROWS = ("LSTM over the last 5 transactions", "XGBoost")


def _choice_name(k: int) -> str:
    return f"pca{k}" if k else "raw"


class _SequenceRunner:
    """The Handbook folds, with token positions for the fine-tuned head."""

    def __init__(self, runner: _Runner, tokens: Any, say: Callable[[str], None]) -> None:
        self.runner = runner
        self.tokens = tokens
        self.say = say
        self.base_X = runner.matrices["vigil"]
        self.base_names = runner.prepared["vigil"].feature_set.names

    def gbdt(self, X: np.ndarray, names: list[str], split: str
             ) -> tuple[list[dict[str, float]], list[np.ndarray]]:
        per_fold, scores = [], []
        for fd in self.runner.folds[split]:
            model = RiskModel(**GBDT_PARAMS).fit(X[fd.train], fd.y_train, feature_names=names)
            s = model.predict_margin(X[fd.test])
            per_fold.append(self.runner.metrics(fd, s))
            scores.append(s)
        return per_fold, scores

    def head(self, encoder: Any, setting: dict[str, Any], split: str
             ) -> tuple[list[dict[str, float]], list[np.ndarray]]:
        from vigil.models.sequence import finetune, predict_logits

        tokens = self.tokens
        per_fold, scores = [], []
        for fd in self.runner.folds[split]:
            t0 = time.perf_counter()
            train_pos = tokens.position[np.flatnonzero(fd.train)]
            select = np.zeros(len(tokens), dtype=bool)
            select[train_pos] = True
            labels = np.zeros(len(tokens), dtype=np.float32)
            labels[train_pos] = fd.y_train  # known at the fold's test start
            model = finetune(encoder, tokens, select, labels, seed=0, **setting)
            test_pos = tokens.position[np.flatnonzero(fd.test)]
            wanted = np.zeros(len(tokens), dtype=bool)
            wanted[test_pos] = True
            s = predict_logits(model, tokens, wanted)[test_pos].astype(np.float64)
            per_fold.append(self.runner.metrics(fd, s))
            scores.append(s)
            self.say(f"  fold {fd.fold.train_start:%Y-%m-%d}: AP {per_fold[-1]['ap']:.3f} "
                     f"({time.perf_counter() - t0:.0f} s)")
        return per_fold, scores


def _paired(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per-fold differences b − a, summarised (the folds share their test payments)."""
    return summarize_folds([{m: fb[m] - fa[m] for m in METRICS}
                            for fa, fb in zip(a, b, strict=True)])


def _latency(encoder_dir: Path, prepared: Any, tokens: Any, pca: Any, X: np.ndarray,
             names: list[str], base_X: np.ndarray, fd: FoldData, n: int = 1000
             ) -> dict[str, Any]:
    """Per payment: the encoder under ONNX Runtime (inputs built from the card's recent
    rows, then the chosen principal components), then the GBDT's margin on the features
    and components. The rows are fetched before the clock starts, as an online state
    would hold them."""
    from vigil.models.sequence import SequenceRuntime

    runtime = SequenceRuntime(encoder_dir, threads=1)
    runtime.pca = pca
    model = RiskModel(**GBDT_PARAMS).fit(X[fd.train], fd.y_train,
                                         feature_names=names).for_serving()
    rows = np.flatnonzero(fd.test)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    keep = runtime.config.history_rows
    cases = []
    for r in rows:
        p = tokens.position[r]
        lo = max(tokens.first[p], p - keep)
        dicts = prepared.payments.take(pa.array(tokens.rows[lo:p + 1])).to_pylist()
        cases.append((dicts[:-1], dicts[-1], base_X[r]))
    encoder_ms, total_ms = [], []
    for hist, pay, base in cases * 2:  # the first pass warms up
        t0 = time.perf_counter()
        f = runtime.features_one(hist, pay)
        t1 = time.perf_counter()
        model.predict_one_margin(np.concatenate([base, f]))
        t2 = time.perf_counter()
        encoder_ms.append((t1 - t0) * 1e3)
        total_ms.append((t2 - t0) * 1e3)
    encoder_ms, total_ms = encoder_ms[len(cases):], total_ms[len(cases):]
    return {"payments": len(cases), "threads": 1,
            "encoder_ms": {"p50": float(np.percentile(encoder_ms, 50)),
                           "p99": float(np.percentile(encoder_ms, 99))},
            "encoder_and_score_ms": {"p50": float(np.percentile(total_ms, 50)),
                                     "p99": float(np.percentile(total_ms, 99))}}


def run_sequence_benchmark(data_path: str | Path, *, out_dir: str | Path = "bench/results",
                           encoder_dir: str | Path | None = None,
                           work_dir: str | Path = "runs/sequence-bench",
                           pretrain_minutes: float = 12.0, pretrain_epochs: int = 8,
                           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``sequence_handbook.json`` and ``.md`` in ``out_dir``.

    With ``encoder_dir`` an existing checkpoint is used; otherwise one is pre-trained in
    ``work_dir/encoder`` for at most ``pretrain_minutes``.
    """
    from vigil.models.sequence import (
        SequenceConfig,
        embed_tokens,
        export_checkpoint_onnx,
        load_encoder,
        pretrain,
        read_doc,
        tokenize,
    )

    say = progress or (lambda _m: None)
    data_path = Path(data_path)
    started = time.perf_counter()
    data = read_handbook_file(data_path, say)
    fs = payments_default()
    prepared = prepare(data, fs)
    say(f"features '{fs.name}': {len(fs.names)} columns for {data.payments.num_rows:,} payments")
    runner = _Runner({"vigil": prepared}, say)
    payments = prepared.payments

    # 1. the encoder, pre-trained on payments before the first test week
    if encoder_dir is None:
        encoder_dir = Path(work_dir) / "encoder"
        early = payments.filter(pc.less(payments.column("ts"), pa.scalar(
            PRETRAIN_UNTIL, pa.timestamp("us", tz="UTC"))))
        resume = (encoder_dir / "sequence.json").is_file()
        say(f"pre-training on {early.num_rows:,} payments before {PRETRAIN_UNTIL:%Y-%m-%d} "
            f"(at most {pretrain_minutes:g} min{', resuming' if resume else ''})")

        def show(e: dict[str, Any]) -> None:
            if e["event"] == "epoch":
                say(f"  epoch {e['epoch']}: loss {e['train_loss']:.4f}, held-out "
                    f"{e['valid_loss'] or float('nan'):.4f}, {e['events_per_s']:,} events/s")
            elif e["event"] == "stopped":
                say(f"  time budget reached at epoch {e['epoch']}, batch {e['batch']}")

        pretrain(early, encoder_dir, config=None if resume else SequenceConfig(fields=FIELDS),
                 epochs=pretrain_epochs, max_minutes=pretrain_minutes, resume=resume,
                 data_info={"path": str(data_path), "until": PRETRAIN_UNTIL.isoformat()},
                 progress=show)
        export_checkpoint_onnx(encoder_dir)
    encoder_dir = Path(encoder_dir)
    doc = read_doc(encoder_dir)
    if "onnx" not in doc.get("files", {}):
        export_checkpoint_onnx(encoder_dir)
        doc = read_doc(encoder_dir)
    encoder = load_encoder(encoder_dir)

    # 2. embeddings of every payment (each reads only its card's past)
    t0 = time.perf_counter()
    tokens = tokenize(payments, encoder.config)
    E = np.full((payments.num_rows, encoder.config.dim), np.nan, dtype=np.float32)
    E[tokens.rows] = embed_tokens(encoder, tokens)
    embed_seconds = time.perf_counter() - t0
    say(f"embedded {len(tokens):,} payments in {embed_seconds:.0f} s "
        f"({len(tokens) / embed_seconds:,.0f}/s)")
    ts = np.asarray(pc.cast(payments.column("ts"), pa.int64()).to_numpy())
    early_rows = ts < int(PRETRAIN_UNTIL.timestamp() * 1e6)

    from vigil.models.sequence import EmbeddingPCA

    seq = _SequenceRunner(runner, tokens, say)
    base_X, base_names = seq.base_X, list(seq.base_names)
    variants: dict[str, Any] = {}

    # 3. GBDT alone
    val_base, _ = seq.gbdt(base_X, base_names, "validation")
    test_base, scores = seq.gbdt(base_X, base_names, "test")
    say("gbdt: test " + _triple(summarize_folds(test_base)))
    variants["gbdt"] = {
        "description": "vigil default features, XGBoost (parameters of `vigil bench handbook`)",
        "validation": summarize_folds(val_base), "test": summarize_folds(test_base),
        "recall_by_scenario@1%fpr": runner.scenario_recall("test", scores)}

    # 4. GBDT + embeddings: k chosen on validation AP
    choices, best = {}, None
    pcas: dict[int, EmbeddingPCA] = {}
    for k in EMBEDDING_CHOICES:
        if k:
            pcas[k] = EmbeddingPCA(k).fit(E[early_rows])
            extra, extra_names = pcas[k].transform(E), pcas[k].names()
        else:
            extra, extra_names = E, [f"seq_e{i + 1}" for i in range(E.shape[1])]
        X = np.hstack([base_X, extra])
        names = base_names + extra_names
        val, _ = seq.gbdt(X, names, "validation")
        v = summarize_folds(val)
        choices[_choice_name(k)] = {"validation": v, "paired_vs_gbdt": _paired(val_base, val)}
        say(f"gbdt + {_choice_name(k)}: validation " + _triple(v))
        if best is None or v["ap"]["mean"] > best[1]["ap"]["mean"]:
            best = (k, v, X, names)
    assert best is not None
    k, v, X, names = best
    test, scores = seq.gbdt(X, names, "test")
    say(f"gbdt + {_choice_name(k)} (chosen): test " + _triple(summarize_folds(test)))
    variants["gbdt_sequence"] = {
        "description": f"as gbdt, plus the sequence embedding ({_choice_name(k)}, chosen on "
                       "validation AP)",
        "embedding": _choice_name(k), "validation": v, "test": summarize_folds(test),
        "paired_vs_gbdt": {"validation": choices[_choice_name(k)]["paired_vs_gbdt"],
                           "test": _paired(test_base, test)},
        "choices": choices,
        "recall_by_scenario@1%fpr": runner.scenario_recall("test", scores)}
    latency = _latency(encoder_dir, prepared, tokens, pcas.get(k), X, names, base_X,
                       runner.folds["test"][0])
    say(f"latency per payment (ONNX Runtime, 1 thread): encoder p50 "
        f"{latency['encoder_ms']['p50']:.2f} ms, p99 {latency['encoder_ms']['p99']:.2f} ms; "
        f"encoder + GBDT p50 {latency['encoder_and_score_ms']['p50']:.2f} ms, p99 "
        f"{latency['encoder_and_score_ms']['p99']:.2f} ms")

    # 5. the fine-tuned head, setting chosen on validation AP; and without pre-training
    best_head = None
    head_choices = {}
    for setting in FINETUNE_GRID:
        say(f"fine-tuned head {setting}: validation folds")
        val, _ = seq.head(encoder, setting, "validation")
        v = summarize_folds(val)
        head_choices[json.dumps(setting)] = {"validation": v}
        say("  validation " + _triple(v))
        if best_head is None or v["ap"]["mean"] > best_head[1]["ap"]["mean"]:
            best_head = (setting, v)
    assert best_head is not None
    setting, v = best_head
    say(f"fine-tuned head {setting} (chosen): test folds")
    test, scores = seq.head(encoder, setting, "test")
    say("  test " + _triple(summarize_folds(test)))
    variants["sequence_head"] = {
        "description": "pre-trained encoder + fraud head, fine-tuned on each training week",
        "setting": setting, "validation": v, "test": summarize_folds(test),
        "choices": head_choices,
        "recall_by_scenario@1%fpr": runner.scenario_recall("test", scores)}
    say(f"head without pre-training {setting}: test folds")
    from vigil.models.sequence import SequenceEncoder

    scratch = SequenceEncoder(encoder.config)
    test, scores = seq.head(scratch, setting, "test")
    say("  test " + _triple(summarize_folds(test)))
    variants["sequence_head_scratch"] = {
        "description": "the same head and setting on a randomly initialised encoder",
        "setting": setting, "test": summarize_folds(test),
        "recall_by_scenario@1%fpr": runner.scenario_recall("test", scores)}

    result = {
        "benchmark": "sequence-handbook",
        "protocol": {"train_days": 7, "delay_days": 7, "test_days": 7,
                     "known_compromised_cards_removed": True, "metrics": list(METRICS),
                     "pretrain_until": PRETRAIN_UNTIL.isoformat()},
        "data": {"path": str(data_path), "sha256": file_sha256(data_path)
                 if data_path.is_file() else data.fingerprint(),
                 "payments": data.payments.num_rows},
        "encoder": {"path": str(encoder_dir), "config": doc["config"],
                    "training": doc["training"], "metrics": doc["metrics"],
                    "embed_seconds": round(embed_seconds, 1),
                    "embed_per_s": round(len(tokens) / embed_seconds)},
        "published": [{"model": m, "auc": a, "ap": p, "cp@100": c}
                      for m, a, p, c in PUBLISHED if m in HANDBOOK_ROWS],
        "variants": variants,
        "latency": latency,
        "machine": {**machine_info(), "torch": _version("torch"),
                    "onnxruntime": _version("onnxruntime")},
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sequence_handbook.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "sequence_handbook.md").write_text(sequence_markdown(result))
    return result


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _triple(summary: dict[str, dict[str, float]]) -> str:
    return " / ".join(f"{summary[m]['mean']:.3f}" for m in METRICS)


def _fmt(summary: dict[str, dict[str, float]], metric: str) -> str:
    s = summary[metric]
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


_LABELS = {
    "gbdt": "GBDT alone (vigil features)",
    "gbdt_sequence": "GBDT + sequence embeddings",
    "sequence_head": "fine-tuned sequence head",
    "sequence_head_scratch": "the same head, no pre-training",
}


def sequence_markdown(result: dict[str, Any]) -> str:
    """The results as the markdown the docs show."""
    v = result["variants"]
    lines = ["| variant | AUC ROC | AP | CP@100 | validation AP |", "|---|---|---|---|---|"]
    for name, label in _LABELS.items():
        if name not in v:
            continue
        row = v[name]
        if name == "gbdt_sequence":
            label += f" ({row['embedding']})"
        val = _fmt(row["validation"], "ap") if "validation" in row else ""
        lines.append(f"| {label} | {_fmt(row['test'], 'auc')} | {_fmt(row['test'], 'ap')} | "
                     f"{_fmt(row['test'], 'cp@100')} | {val} |")
    for p in result["published"]:
        lines.append(f"| Handbook {p['model']} (published) | {p['auc']:.3f} | {p['ap']:.3f} | "
                     f"{p['cp@100']:.3f} | |")
    seq = v.get("gbdt_sequence")
    if seq:
        d = seq["paired_vs_gbdt"]["test"]
        lines += ["", "GBDT + embeddings minus GBDT alone, per test fold (mean ± std over the "
                  "4 folds): " + ", ".join(f"{m} {d[m]['mean']:+.4f} ± {d[m]['std']:.4f}"
                                           for m in METRICS) + "."]
        lines += ["", "Embedding choices on the validation folds (AP; difference to GBDT alone):",
                  "", "| embedding | validation AUC | validation AP | validation CP@100 | "
                  "AP vs GBDT |", "|---|---|---|---|---|"]
        for name, c in seq["choices"].items():
            val, d = c["validation"], c["paired_vs_gbdt"]
            lines.append(f"| {name} | {val['auc']['mean']:.3f} | {val['ap']['mean']:.3f} | "
                         f"{val['cp@100']['mean']:.3f} | {d['ap']['mean']:+.4f} |")
    scen = v.get("gbdt", {}).get("recall_by_scenario@1%fpr")
    if scen:
        names = sorted(scen)
        lines += ["", "Recall by fraud scenario at a 1 % false-positive rate (test folds "
                  "pooled):", "", "| variant | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        for name, label in _LABELS.items():
            r = v.get(name, {}).get("recall_by_scenario@1%fpr", {})
            if r:
                lines.append(f"| {label} | " + " | ".join(
                    f"{r[n]['recall']:.3f} ({int(r[n]['frauds'])})" if n in r else ""
                    for n in names) + " |")
    enc = result["encoder"]
    t, c = enc["training"], enc["config"]
    best = enc["metrics"].get("best_valid_loss")
    lines += ["", f"Encoder: L={c['seq_len']}, dim {c['dim']}, {c['n_layers']} layers, "
              f"{c['n_heads']} heads, fields {', '.join(c['fields'])}; pre-trained on "
              f"{t['data']['payments']:,} payments before "
              f"{result['protocol']['pretrain_until'][:10]}"
              f" for {t['state']['epoch']} epoch(s)"
              + (f" + {t['state']['batch']} batches" if t["state"]["batch"] else "")
              + f" in {t['state']['seconds'] / 60:.1f} min ({t['events_per_s']:,.0f} events/s)"
              + (f", held-out loss {best:.3f}" if best is not None else "")
              + f"; all {result['data']['payments']:,} payments embedded in "
              f"{enc['embed_seconds']:.0f} s ({enc['embed_per_s']:,}/s)."]
    lat = result.get("latency")
    if lat:
        lines += ["", f"Per payment on CPU (ONNX Runtime, {lat['threads']} thread, "
                  f"{lat['payments']:,} test payments): encoder with its inputs p50 "
                  f"{lat['encoder_ms']['p50']:.2f} ms, p99 {lat['encoder_ms']['p99']:.2f} ms; "
                  f"encoder + GBDT margin p50 {lat['encoder_and_score_ms']['p50']:.2f} ms, p99 "
                  f"{lat['encoder_and_score_ms']['p99']:.2f} ms."]
    lines += ["", f"Machine: {machine_line(result['machine'])}, torch "
              f"{result['machine']['torch']}, onnxruntime {result['machine']['onnxruntime']}; "
              f"data sha256 "
              f"{result['data']['sha256'][:16]}…; run took {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"
