"""The scoring service without HTTP: store, online state, model, rules and lists together.

:class:`ScoringService` is what the FastAPI app (``_app.py``) calls and what tests and
benchmarks drive directly. Its promises:

- a payment is scored from the online state, then durably committed with its decision, and
  only then added to the online state (a failed commit leaves no trace anywhere); so a
  payment sees every payment acknowledged before it was scored, and payments in flight at
  the same moment do not see each other (as payments at the same instant do not, offline);
- a label is committed, then applied to the label-aware features, with the payment's earlier
  reports from the store, so a second label of a payment changes nothing;
- on start the in-process state is rebuilt from the store: the latest snapshot, then every
  payment and label recorded after it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vigil._errors import ConfigError
from vigil.features.online import MemoryState, RedisState, micros
from vigil.models import ModelBundle
from vigil.rules import RuleSet, compile_rules, payment_attributes
from vigil.scoring import Scorer, ScoreResult, online_features
from vigil.serving._batches import Forward
from vigil.serving._group_commit import GroupCommitter
from vigil.serving._model_batcher import ModelBatcher
from vigil.store import BLOCKED_CARDS, BLOCKED_EMAILS, Store, UnknownPayment

Progress = Callable[[str], None]


class StoreLists:
    """The store's lists as the rules read them (``contains`` / ``members``), each list's
    values cached for ``ttl`` seconds (changes made through this process apply at once; other
    processes' within ``ttl``), so deciding a payment reads no table."""

    def __init__(self, store: Store, *, ttl: float = 5.0) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def contains(self, list_name: str, value: Any) -> bool:
        return value is not None and str(value) in self.members(list_name)

    def members(self, list_name: str) -> set[Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(list_name)
        if hit is not None and hit[0] > now:
            return hit[1]
        values = self._store.members(list_name)
        with self._lock:
            self._cache[list_name] = (now + self._ttl, values)
        return values

    def changed(self, list_name: str | None = None) -> None:
        """Forget the cached values of a list (all lists when None)."""
        with self._lock:
            if list_name is None:
                self._cache.clear()
            else:
                self._cache.pop(list_name, None)


class ScoringService:
    """Scores payments and takes labels, reviews, lists and rules (see the module docstring).

    ``redis_url``: keep the online state in Redis (required for several processes); without
    it the state lives in this process and is rebuilt from the store on start.
    ``snapshot_every``: save the in-process state to the store every this many payments (and
    on :meth:`close`), so a restart replays only the tail.
    """

    def __init__(self, store: Store, bundle: ModelBundle, *, redis_url: str | None = None,
                 snapshot_every: int = 50_000, progress: Progress | None = None) -> None:
        self.store = store
        self.bundle = bundle
        self.lists = StoreLists(store)
        self.attributes = payment_attributes(bundle.feature_set)
        if redis_url:
            state = RedisState(redis_url, namespace=bundle.model_version or "default")
        else:
            state = MemoryState()
        self.shared_state = redis_url is not None
        self.online = online_features(bundle, state)
        self.scorer = Scorer(bundle, self.online, lists=self.lists)
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._lock = threading.RLock()
        self._commit_lock = threading.Lock()
        # payments committed but not yet in the online state: a snapshot must not claim them
        self._unapplied: set[int] = set()
        self._committed_through = store.last_seqs()[0]
        self.committer = GroupCommitter(store, on_commit=self._on_commit)
        self.batcher = ModelBatcher(self.scorer.model)
        self.rules_version: int | None = None
        self.rules_text = ""
        self._load_rules()
        if not self.shared_state:
            self.rebuild(progress)

    # ------------------------------------------------------------------ state
    def rebuild(self, progress: Progress | None = None) -> dict[str, int]:
        """Rebuild the in-process state: the latest snapshot, then the events after it."""
        say = progress or (lambda _m: None)
        with self._lock:
            snapshot = self.store.latest_snapshot()
            payments_seq = labels_seq = 0
            if snapshot is not None:
                state = MemoryState.load(json.loads(snapshot.payload))
                try:
                    online = online_features(self.bundle, state)
                except ValueError as exc:  # made for other features: replay every event
                    say(f"online state: snapshot not used ({exc})")
                else:
                    self.online = self.scorer.online = online
                    payments_seq, labels_seq = snapshot.payments_seq, snapshot.labels_seq
                    say(f"online state: snapshot at payment {payments_seq:,}, "
                        f"label {labels_seq:,}")
            keys = self.online.label_keys
            rows: dict[str, dict[str, Any]] = {}
            n_payments = 0
            for payment in self.store.payments_since(payments_seq):
                self.online.record_payment(payment)
                rows[payment["payment_id"]] = {"payment_id": payment["payment_id"],
                                               **{k: payment.get(k) for k in keys}}
                n_payments += 1
            firsts: dict[str, list[int | None]] = {}
            n_labels = 0
            for label in self.store.labels_since(labels_seq):
                pid = label["payment_id"]
                if pid not in firsts:
                    row, earlier = self._label_context(pid, label["seq"], rows)
                    rows[pid] = row
                    firsts[pid] = list(earlier)
                seen = firsts[pid]
                self.online.add_label(rows[pid], is_fraud=label["is_fraud"],
                                      reported_at=label["reported_at"],
                                      earlier=(seen[0], seen[1]))
                r = micros(label["reported_at"])
                seen[0] = r if seen[0] is None else min(seen[0], r)
                if label["is_fraud"]:
                    seen[1] = r if seen[1] is None else min(seen[1], r)
                n_labels += 1
            self.online.state.sweep(self.online.clock)
            say(f"online state: replayed {n_payments:,} payments and {n_labels:,} labels")
            return {"payments": n_payments, "labels": n_labels}

    def _label_context(self, pid: str, before_seq: int, rows: Mapping[str, dict[str, Any]]
                        ) -> tuple[dict[str, Any], tuple[int | None, int | None]]:
        """A payment's label keys and its first reports among labels recorded before
        ``before_seq`` (from the store: the payment may predate the replayed tail)."""
        stored = self.store.get_payment(pid)
        if stored is None:  # pragma: no cover - labels refer to stored payments
            raise UnknownPayment(pid)
        row = rows.get(pid) or {"payment_id": pid,
                                **{k: stored.get(k) for k in self.online.label_keys}}
        lab = fraud = None
        for label in stored["labels"]:
            if label["seq"] >= before_seq:
                break
            r = micros(label["reported_at"])
            lab = r if lab is None else min(lab, r)
            if label["is_fraud"]:
                fraud = r if fraud is None else min(fraud, r)
        return row, (lab, fraud)

    def snapshot(self) -> int | None:
        """Save the in-process state to the store; returns the snapshot id (None: Redis)."""
        if self.shared_state:
            return None
        with self._lock:
            # labels are stored and applied under this lock, so all stored ones are in the
            # state; payments are applied after their commit, so the snapshot covers those up
            # to the first committed one not applied yet (the restart replays from there;
            # recording a payment twice changes nothing)
            _, labels_seq = self.store.last_seqs()
            with self._commit_lock:
                payments_seq = (min(self._unapplied) - 1 if self._unapplied
                                else self._committed_through)
            state = self.online.state
            assert isinstance(state, MemoryState)
            payload = json.dumps(state.dump(), separators=(",", ":")).encode()
            self._since_snapshot = 0
            return self.store.save_snapshot(payload, payments_seq, labels_seq)

    # ------------------------------------------------------------------ rules
    def _load_rules(self) -> None:
        current = self.store.current_rules()
        if current is None:
            self.scorer.rules, self.rules_version, self.rules_text = None, None, ""
            return
        version, text = current
        self.scorer.rules = self.compile(text)
        self.rules_version, self.rules_text = version, text

    def compile(self, text: str) -> RuleSet:
        """Check rules text against the model's attributes and the store's lists."""
        lists = {*self.store.list_names(), BLOCKED_CARDS, BLOCKED_EMAILS}
        return compile_rules(text, attributes=self.attributes, lists=lists, source="rules")

    def save_rules(self, text: str, by: str) -> int:
        """Check, store and put in force a new rule set; a bad rule is refused, never saved."""
        rules = self.compile(text)
        with self._lock:
            version = self.store.save_rules(text, by)
            self.scorer.rules, self.rules_version, self.rules_text = rules, version, text
        return version

    def backtest(self, text: str, *, against_current: bool = True) -> dict[str, Any]:
        """Replay the stored history (payments, their risk scores, point-in-time features
        from the offline engine, and labels) through ``text``'s rules and, with
        ``against_current``, through the rules in force; see :func:`vigil.rules.backtest`."""
        import pyarrow as pa

        from vigil.events import LABEL_SCHEMA, PAYMENT_SCHEMA
        from vigil.features import build_features
        from vigil.rules import backtest

        rules = self.compile(text)
        baseline = self.scorer.rules if against_current else None
        payments = list(self.store.payments_since(0))
        labels = list(self.store.labels_since(0))
        columns = [f.name for f in PAYMENT_SCHEMA]
        table = pa.Table.from_pylist([{c: p.get(c) for c in columns} for p in payments],
                                     schema=PAYMENT_SCHEMA)
        label_table = pa.Table.from_pylist(
            [{f.name: lab.get(f.name) for f in LABEL_SCHEMA} for lab in labels],
            schema=LABEL_SCHEMA)
        features = build_features(self.bundle.feature_set, table, label_table)
        scores = self.store.risk_scores()
        same = [n for n in features.column_names if n in table.column_names and n != "payment_id"]
        history = features.drop_columns(same).join(table, "payment_id")
        ids = history.column("payment_id").to_pylist()
        history = history.append_column("risk_score", pa.array(
            [scores.get(pid, (None, None))[0] for pid in ids], pa.int64()))
        history = history.append_column("risk_level", pa.array(
            [scores.get(pid, (None, None))[1] for pid in ids], pa.string()))
        return backtest(rules, history, label_table, lists=self.lists, baseline=baseline)

    # ------------------------------------------------------------------ payments and labels
    def score_payment(self, payment: dict[str, Any]) -> dict[str, Any]:
        """Score, decide, store durably, then count the payment in the online state."""
        result, decision = self.decide(payment)
        # durably stored (with the payments of concurrent requests: one flush for all), and
        # only then counted in the features of the payments after it
        seq = self.committer.write(payment, decision)  # raises DuplicatePayment
        self.recorded(payment, seq)
        return result.to_dict()

    def decide(self, payment: Mapping[str, Any]) -> tuple[ScoreResult, dict[str, Any]]:
        """Score and decide a payment without storing it: the result and the decision row."""
        with self._lock:
            result = self.scorer.score(payment)
        return result, self._decision_row(result)

    async def score_async(self, payment: Mapping[str, Any]) -> tuple[ScoreResult, int]:
        """:meth:`score_payment` for the event loop; returns the result and the payment's seq.

        The features are read here; the model call (shared with the payments scored at the
        same moment, see :class:`ModelBatcher`), the reasons, rules and decision then run on
        the model's thread, which hands the payment to the group commit (one flush for all
        waiting); the loop wakes once, when the payment is on disk, and counts it in the
        online state. Raises :class:`~vigil.store.DuplicatePayment` as :meth:`score_payment`.
        """
        with self._lock:
            features, x, timing = self.scorer.features_timed(payment)
        t1 = time.perf_counter()
        scored: list[ScoreResult] = []

        def decide(probability: float, contribs: np.ndarray) -> Forward:
            t2 = time.perf_counter()
            result = self.scorer.finish(payment, features, x, probability, contribs,
                                        {**timing, "model": (t2 - t1) * 1e6})
            scored.append(result)
            return Forward(self.committer, (payment, self._decision_row(result)))

        seq = int(await self.batcher.explain_then(x, decide))
        self.recorded(payment, seq)
        return scored[0], seq

    @staticmethod
    def _decision_row(result: ScoreResult) -> dict[str, Any]:
        return {
            "risk_score": result.risk_score, "risk_level": result.risk_level,
            "probability": result.probability, "decision": result.decision,
            "rule_id": result.rule["id"] if result.rule else None,
            "rule": result.rule["text"] if result.rule else None,
            "reasons": [r.to_dict() for r in result.reasons],
            "model_version": result.model_version, "timings": result.timing_us,
        }

    def _on_commit(self, seqs: list[int]) -> None:
        """Called by the committer with the seqs it just made durable, before it tells the
        requests: from now until :meth:`recorded`, they are stored but not in the state."""
        with self._commit_lock:
            self._unapplied.update(seqs)
            self._committed_through = max(self._committed_through, *seqs)

    def recorded(self, payment: Mapping[str, Any], seq: int | None = None) -> None:
        """A payment is stored (as ``seq``): count it in the online state (and snapshot when
        due)."""
        with self._lock:
            self.scorer.record(payment)
            if seq is not None:
                with self._commit_lock:
                    self._unapplied.discard(seq)
            self._since_snapshot += 1
            due = not self.shared_state and self._since_snapshot >= self.snapshot_every
        if due:
            self.snapshot()

    def add_label(self, label: dict[str, Any]) -> int:
        """Store a label, then feed it to the label-aware features; returns its seq."""
        with self._lock:
            stored = self.store.get_payment(label["payment_id"])
            if stored is None:
                raise UnknownPayment(label["payment_id"])
            earlier = self.store.first_reports(label["payment_id"])
            seq = self.store.add_label(label)
            self.online.add_label(stored, is_fraud=label["is_fraud"],
                                  reported_at=label["reported_at"],
                                  earlier=(_us(earlier.labelled), _us(earlier.fraud)))
        return seq

    def close_review(self, review_id: int, outcome: str, by: str) -> Any:
        """Close a review; its outcome label goes to the features like any other label."""
        with self._lock:
            review = self.store.get_review(review_id)  # raises UnknownReview
            stored = self.store.get_payment(review.payment_id)
            earlier = self.store.first_reports(review.payment_id)
            closed = self.store.close_review(review_id, outcome, by)
            for list_name, _ in closed.listed:
                self.lists.changed(list_name)
            if stored is not None:
                self.online.add_label(stored, is_fraud=closed.label["is_fraud"],
                                      reported_at=closed.label["reported_at"],
                                      earlier=(_us(earlier.labelled), _us(earlier.fraud)))
        return closed

    def add_list_item(self, list_name: str, value: str, source: str,
                      reason: str | None = None) -> bool:
        added = self.store.add_list_item(list_name, value, source, reason)
        self.lists.changed(list_name)
        return added

    def remove_list_item(self, list_name: str, value: str) -> bool:
        removed = self.store.remove_list_item(list_name, value)
        self.lists.changed(list_name)
        return removed

    def close(self) -> None:
        self.batcher.close()
        self.committer.close()
        if not self.shared_state and self._since_snapshot:
            self.snapshot()
        self.online.state.close()


def _us(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def now_utc() -> datetime:
    return datetime.now(UTC)


def check_workers(workers: int, redis_url: str | None) -> None:
    """Several worker processes must share their online state through Redis."""
    if workers > 1 and not redis_url:
        raise ConfigError(f"--workers {workers} needs the Redis state backend (--redis URL): "
                          "each process would otherwise keep its own online features and "
                          "see only the payments it scored")
