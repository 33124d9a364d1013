"""Speed of the real-time path, on a simulated world and a model trained on it.

- in-process scoring (online features, model, SHAP reasons, rules) per payment, against a bare
  single-row XGBoost predict of the same model;
- online features: update and read per payment;
- replay: events (payments and label reports) per second through the online features;
- HTTP: ``vigil serve`` (SQLite store, durable commits) under a load process on loopback;
- optionally (``encoder_dir``), in-process scoring with a bundle that carries the sequence
  encoder (ONNX Runtime, one thread), the card's last payments read from the online state.

Targets (docs/benchmarks.md): scoring p99 at most 1 ms and at most 5x the bare predict;
features p99 at most 100 us; HTTP at least 1,000 payments/s with p99 at most 20 ms on 2
cores; replay at least 20,000 events/s.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from vigil.bench._machine import machine_info, machine_line
from vigil.features import payments_default
from vigil.features.online import OnlineFeatures, micros
from vigil.pipeline import default_train_window, prepare, train_bundle
from vigil.rules import compile_rules, payment_attributes
from vigil.scoring import Scorer
from vigil.simulate import HandbookWorld
from vigil.store import Store

RULES = """block if :risk_score: > 85
review if :risk_score: > 70
review if :amount: > 1000 and :count_by_card_1h: > 2
"""


def _percentiles(values_us: list[float]) -> dict[str, float]:
    a = np.asarray(values_us)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "mean": float(a.mean()), "n": int(a.size)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_serving_benchmark(*, days: int = 45, cards: int = 2000, seed: int = 0,
                          http_seconds: float = 20.0, concurrency: int = 16,
                          http_rate: float = 1000.0,
                          out_dir: str | Path = "bench/results",
                          encoder_dir: str | Path | None = None,
                          pretrain_minutes: float = 1.0,
                          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``serving.json`` and ``serving.md`` in ``out_dir``.

    ``encoder_dir``: also score with the sequence encoder of this checkpoint; where the folder
    holds none, one is pre-trained there first (default settings, on the payments before the
    last day, at most ``pretrain_minutes``; needs PyTorch)."""
    say = progress or (lambda _m: None)
    say(f"simulating {days} days of {cards:,} cards and training a model")
    world = HandbookWorld(n_cards=cards, n_terminals=2 * cards).simulate(
        days, start="2024-01-01", seed=seed)
    fs = payments_default()
    prepared = prepare(world, fs)
    bundle = train_bundle(prepared, default_train_window(prepared),
                          params={"n_estimators": 300})
    rows = world.payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")]).to_pylist()
    last_day = micros(rows[-1]["ts"]) - 86_400_000_000
    history = [r for r in rows if micros(r["ts"]) < last_day]
    probe = [r for r in rows if micros(r["ts"]) >= last_day][:5000]
    result: dict[str, Any] = {"benchmark": "serving",
                              "world": {"days": days, "cards": cards, "seed": seed,
                                        "payments": len(rows)},
                              "model": {"feature_set": fs.name, "features": len(fs.names),
                                        "trees": bundle.model.best_iteration_ + 1}}

    say("replaying the history through the online features")
    online = OnlineFeatures(fs)
    t0 = time.perf_counter()
    online.replay(world.payments, world.labels)
    seconds = time.perf_counter() - t0
    first_reports = int(world.labels.num_rows)  # one report per payment in this world
    result["replay"] = {"payments": len(rows), "label_reports": first_reports,
                        "seconds": seconds, "events_per_s": (len(rows) + first_reports) / seconds}
    say("rebuilding the state from the same events (what a restart does)")
    rebuild = OnlineFeatures(fs)
    by_id = {r["payment_id"]: r for r in rows}
    t0 = time.perf_counter()
    for r in rows:
        rebuild.record_payment(r)
    for lab in world.labels.to_pylist():
        rebuild.add_label(by_id[lab["payment_id"]], is_fraud=lab["is_fraud"],
                          reported_at=lab["reported_at"])
    seconds = time.perf_counter() - t0
    result["rebuild"] = {"seconds": seconds,
                         "events_per_s": (len(rows) + world.labels.num_rows) / seconds}

    say("memory of the online state (tracemalloc)")
    result["memory"] = _state_memory(fs, history, world.labels)

    say(f"in-process scoring of {len(probe):,} payments of the last day")
    online = OnlineFeatures(fs)
    for r in history:
        online.record_payment(r)
    rules = compile_rules(RULES, attributes=payment_attributes(fs))
    scorer = Scorer(bundle, online, rules=rules)
    score_us, feature_us, bare_us = [], [], []
    for r in probe:
        t = time.perf_counter()
        res = scorer.score(r)
        score_us.append((time.perf_counter() - t) * 1e6)
        feature_us.append(res.timing_us["features"])
        scorer.record(r)
    plain_us = []
    plain = Scorer(bundle, OnlineFeatures(fs), rules=rules)
    for r in history:
        plain.record(r)
    for r in probe:
        t = time.perf_counter()
        plain.score(r, explain=False)
        plain_us.append((time.perf_counter() - t) * 1e6)
        plain.record(r)
    model = bundle.model
    for r in probe:
        f = scorer.online.features(r)
        x = np.array([np.nan if f[n] is None else f[n] for n in bundle.feature_names])
        t = time.perf_counter()
        model.predict_one_margin(x)
        bare_us.append((time.perf_counter() - t) * 1e6)
    update_us = []
    fresh = OnlineFeatures(fs)
    for r in history:
        fresh.record_payment(r)
    for r in probe:
        t = time.perf_counter()
        fresh.add_payment(r)
        update_us.append((time.perf_counter() - t) * 1e6)
    result["in_process"] = {"score_us": _percentiles(score_us),
                            "score_without_reasons_us": _percentiles(plain_us),
                            "bare_predict_us": _percentiles(bare_us),
                            "features_read_us": _percentiles(feature_us),
                            "features_update_and_read_us": _percentiles(update_us)}
    if encoder_dir is not None:
        result["in_process"]["sequence"] = _with_encoder(
            prepared, history, probe, rules, Path(encoder_dir), pretrain_minutes, say)
    bare = result["in_process"]["bare_predict_us"]["p50"]
    result["in_process"]["ratio_p50"] = result["in_process"]["score_us"]["p50"] / bare
    result["in_process"]["ratio_without_reasons_p50"] = (
        result["in_process"]["score_without_reasons_us"]["p50"] / bare)

    say(f"HTTP: vigil serve under {concurrency} concurrent requests for {http_seconds:.0f} s")
    result["http"] = _http(bundle, http_seconds, concurrency, http_rate, say)
    result["machine"] = machine_info()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "serving.md").write_text(serving_markdown(result))
    return result


def _with_encoder(prepared: Any, history: list[dict[str, Any]], probe: list[dict[str, Any]],
                  rules: Any, encoder_dir: Path, pretrain_minutes: float,
                  say: Callable[[str], None]) -> dict[str, Any]:
    """In-process scoring with a bundle that carries the sequence encoder."""
    import pyarrow as pa

    from vigil.models.sequence import SequenceRuntime
    from vigil.models.sequence._token_cache import TokenCache
    from vigil.scoring import online_features

    if not (encoder_dir / "sequence.json").is_file():
        from vigil.models.sequence import export_checkpoint_onnx, fit_checkpoint_pca, pretrain

        before = prepared.payments.filter(pa.array(
            [micros(t) < micros(probe[0]["ts"]) for t in prepared.payments.column("ts")
             .to_pylist()]))
        say(f"pre-training a sequence encoder on {before.num_rows:,} payments "
            f"(at most {pretrain_minutes:g} min)")
        pretrain(before, encoder_dir, epochs=1, max_minutes=pretrain_minutes)
        export_checkpoint_onnx(encoder_dir)
        fit_checkpoint_pca(encoder_dir, before, n_components=4)
    runtime = SequenceRuntime(encoder_dir, threads=1)
    say("training a bundle with the sequence encoder's principal components")
    bundle = train_bundle(prepared, default_train_window(prepared),
                          params={"n_estimators": 300}, sequence=runtime)
    online = online_features(bundle)
    for r in history:
        online.record_payment(r)
    scorer = Scorer(bundle, online, rules=rules)
    # a running service has scored each card's earlier payments, so their tokens are in the
    # encoder's cache: score each probed card's last payment before the probe once
    entity = runtime.config.entity
    last = {r[entity]: r for r in history if r.get(entity) is not None}
    for card in {r[entity] for r in probe if r.get(entity) is not None}:
        if card in last:
            scorer.features(last[card])
    cold = TokenCache(runtime.config, size=0)
    say(f"in-process scoring of {len(probe):,} payments with the encoder")
    score_us, plain_us, seq_us, cold_us = [], [], [], []
    for r in probe:
        t = time.perf_counter()
        scorer.score(r, explain=False)
        plain_us.append((time.perf_counter() - t) * 1e6)
        runtime.tokens.discard(r)  # the next call must build the payment's token again
        t = time.perf_counter()
        res = scorer.score(r)
        score_us.append((time.perf_counter() - t) * 1e6)
        seq_us.append(res.timing_us["sequence"])
        if r.get(entity) is not None:
            # the same payment for a card this process has not scored: the whole window
            _features, past = online.features_and_last(r, entity)
            t = time.perf_counter()
            embedding = runtime.embed(cold.inputs(past, r))[0, -1]
            if runtime.pca is not None:
                runtime.pca.transform(embedding[None])
            cold_us.append((time.perf_counter() - t) * 1e6)
        scorer.record(r)
    sizes = online.state.sizes()
    return {"config": runtime.config.to_dict(), "features": bundle.sequence_names,
            "history_rows": runtime.config.history_rows,
            "score_us": _percentiles(score_us),
            "score_without_reasons_us": _percentiles(plain_us),
            "encoder_us": _percentiles(seq_us),
            "encoder_cold_card_us": _percentiles(cold_us),
            "state": sizes}


def _state_memory(fs: Any, history: list[dict[str, Any]], labels: Any) -> dict[str, Any]:
    """Bytes the in-process state holds after the history, per entity and per event."""
    import tracemalloc

    by_id = {r["payment_id"]: r for r in history}
    end = micros(history[-1]["ts"])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    online = OnlineFeatures(fs)
    for r in history:
        online.record_payment(r)
    for lab in labels.to_pylist():
        row = by_id.get(lab["payment_id"])
        if row is not None and micros(lab["reported_at"]) < end:
            online.add_label(row, is_fraud=lab["is_fraud"], reported_at=lab["reported_at"])
    online.state.sweep(online.clock)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    sizes = online.state.sizes()  # type: ignore[attr-defined]
    entities = sizes["payment_entities"] + sizes["label_entities"]
    events = sizes["payment_events"] + sizes["label_events"]
    return {"bytes": used, **sizes, "bytes_per_entity": used / max(entities, 1),
            "bytes_per_event": used / max(events, 1)}


def _http(bundle: Any, seconds: float, concurrency: int, rate: float,
          say: Callable[[str], None]) -> dict[str, Any]:
    """The service under load from its own process: first closed loop (``concurrency`` in
    flight: the most it takes), then open loop at a steady ``rate`` per second (latency from
    when each payment was due: what a payment flow at that rate sees)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundle"
        bundle.save(folder)
        db = Path(tmp) / "vigil.db"
        store = Store.open(db, migrate=True)
        key = store.create_api_key("score", "load")[1]
        store.save_rules(RULES, "bench")
        store.close()
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "vigil", "serve", "--bundle", str(folder), "--store",
             str(db), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("vigil serve did not start: "
                                           + server.stderr.read().decode()[-2000:]) from None
                    time.sleep(0.2)
            load = subprocess.run(
                [sys.executable, "-m", "vigil.bench._load", url, key, str(seconds),
                 str(concurrency)], capture_output=True, text=True, check=True)
            report = json.loads(load.stdout)
            say(f"  {report['requests'] / report['seconds']:,.0f} payments/s at most; now a "
                f"steady {rate:,.0f}/s for {seconds:.0f} s")
            steady = json.loads(subprocess.run(
                [sys.executable, "-m", "vigil.bench._load", url, key, str(seconds),
                 str(max(32, concurrency)), str(rate)],
                capture_output=True, text=True, check=True).stdout)
            stored = Store.open(db)
            durable = stored.count_payments()
            stored.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat = report.pop("latencies_ms")
    steady_lat = steady.pop("latencies_ms")
    return {**report, "concurrency": concurrency, "workers": 1,
            "payments_per_s": report["requests"] / report["seconds"],
            "latency_ms": _percentiles(lat) if lat else None, "stored": durable,
            "steady": {**steady, "connections": max(32, concurrency),
                       "payments_per_s": steady["requests"] / steady["seconds"],
                       "latency_ms": _percentiles(steady_lat) if steady_lat else None}}


def _sequence_rows(seq: dict[str, Any] | None) -> list[str]:
    if not seq:
        return []
    c = seq["config"]
    return [
        f"| in-process scoring with the sequence encoder (L = {c['seq_len']}, dim "
        f"{c['dim']}, {len(seq['features'])} principal components; ONNX Runtime, 1 thread) | "
        f"{seq['score_without_reasons_us']['p50']:,.0f} µs | "
        f"{seq['score_without_reasons_us']['p99']:,.0f} µs | p99 ≤ 2 ms |",
        f"| the same with SHAP reasons | {seq['score_us']['p50']:,.0f} µs | "
        f"{seq['score_us']['p99']:,.0f} µs | p99 ≤ 2 ms |",
        f"| of which the encoder: the payment's token (the card's earlier ones cached), "
        f"ONNX Runtime, PCA | {seq['encoder_us']['p50']:,.0f} µs | "
        f"{seq['encoder_us']['p99']:,.0f} µs | |",
    ] + ([
        f"| the encoder for a card this process has not scored: {seq['history_rows']} rows "
        f"to tokens | {seq['encoder_cold_card_us']['p50']:,.0f} µs | "
        f"{seq['encoder_cold_card_us']['p99']:,.0f} µs | |"] if seq.get("encoder_cold_card_us")
        else [])


def serving_markdown(result: dict[str, Any]) -> str:
    ip, http, rp = result["in_process"], result["http"], result["replay"]
    nan = {"p50": float("nan"), "p99": float("nan")}
    lat = http["latency_ms"] or nan
    steady = http["steady"]
    steady_lat = steady["latency_ms"] or nan
    rows = [
        "| what | p50 | p99 | target |",
        "|---|---|---|---|",
        f"| in-process scoring: features, model, calibration, 3 rules | "
        f"{ip['score_without_reasons_us']['p50']:,.0f} µs | "
        f"{ip['score_without_reasons_us']['p99']:,.0f} µs | p99 ≤ 1 ms |",
        f"| the same with SHAP reasons (what the API answers) | "
        f"{ip['score_us']['p50']:,.0f} µs | {ip['score_us']['p99']:,.0f} µs | |",
        f"| bare single-row XGBoost predict, same model | {ip['bare_predict_us']['p50']:,.0f} µs"
        f" | {ip['bare_predict_us']['p99']:,.0f} µs | |",
        f"| scoring ÷ bare predict (p50), without / with reasons | "
        f"{ip['ratio_without_reasons_p50']:.1f}× / {ip['ratio_p50']:.1f}× | | ≤ 5× |",
        *_sequence_rows(ip.get("sequence")),
        f"| online features: update and read ({result['model']['features']} features) | "
        f"{ip['features_update_and_read_us']['p50']:,.0f} µs | "
        f"{ip['features_update_and_read_us']['p99']:,.0f} µs | p99 ≤ 100 µs |",
        f"| HTTP `POST /v1/payments` at a steady {steady['rate']:,.0f}/s (open loop: latency "
        f"from when each payment was due), 1 worker, SQLite durable | "
        f"{steady_lat['p50']:.1f} ms | {steady_lat['p99']:.1f} ms | p99 ≤ 20 ms |",
        f"| HTTP `POST /v1/payments`, {http['concurrency']} in flight (closed loop: the most "
        f"it takes), 1 worker, SQLite durable | {lat['p50']:.1f} ms | {lat['p99']:.1f} ms | |",
        "",
        "| what | rate | target |",
        "|---|---|---|",
        f"| HTTP payments scored and stored, {http['concurrency']} in flight | "
        f"{http['payments_per_s']:,.0f} /s ({http['errors']} errors) | ≥ 1,000 /s |",
        f"| HTTP payments scored and stored at a steady {steady['rate']:,.0f}/s | "
        f"{steady['payments_per_s']:,.0f} /s ({steady['errors']} errors) | ≥ 1,000 /s |",
        f"| replay through the online features, every payment's features computed "
        f"({rp['payments']:,} payments, {rp['label_reports']:,} label reports) | "
        f"{rp['events_per_s']:,.0f} events/s | "
        f"≥ 20,000 /s |",
        f"| state rebuild from the same events (record only, as on restart) | "
        f"{result['rebuild']['events_per_s']:,.0f} events/s | |",
        "",
        f"Online state after the history (in-process, tracemalloc): "
        f"{result['memory']['bytes'] / 1e6:,.1f} MB for "
        f"{result['memory']['payment_entities']:,} card/terminal entities holding "
        f"{result['memory']['payment_events']:,} payments and "
        f"{result['memory']['label_events']:,} label reports: "
        f"{result['memory']['bytes_per_entity'] / 1e3:,.1f} KB per entity, "
        f"{result['memory']['bytes_per_event']:,.0f} bytes per event.",
        "",
        f"World: {result['world']['days']} days, {result['world']['cards']:,} cards, "
        f"{result['world']['payments']:,} payments; model: {result['model']['trees']} trees "
        f"on {result['model']['features']} features ({result['model']['feature_set']}).",
        "",
        f"Machine: {machine_line(result['machine'])}.",
    ]
    return "\n".join(rows) + "\n"
