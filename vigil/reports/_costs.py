"""What a threshold costs: a small cost model, the threshold table, and the best block and
review thresholds under a review capacity.

Every payment gets an integer risk score 0–100. A policy is two thresholds: **block** the
payments with ``risk_score > block``, send those with ``review < risk_score <= block`` to
manual review, allow the rest. Against approving everything, the policy

- saves ``amount + chargeback_fee`` for every fraud it blocks, and for every fraud a
  reviewer stops (reviewers are assumed to stop ``review_catch_rate`` of the frauds they see);
- costs ``margin · amount + friction`` for every good payment it blocks;
- costs ``review_cost`` for every payment it sends to review.

The net benefit is savings minus costs. Because scores are integers, the whole table comes
from one histogram of the scores (per score: frauds, good payments, and their money), and
every (review, block) pair is priced from its suffix sums.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from vigil._errors import ConfigError

SCORES = 101  # risk scores 0..100


@dataclass(frozen=True)
class CostModel:
    """The money side of a fraud decision (amounts in the payments' currency)."""

    chargeback_fee: float = 15.0
    """Paid on top of the amount for every fraud that goes through (dispute fee, handling)."""
    margin: float = 0.03
    """Share of a good payment's amount lost when it is blocked (the merchant's margin)."""
    friction: float = 10.0
    """Cost of blocking a good customer beyond the lost margin (support, churn)."""
    review_cost: float = 3.0
    """Cost of one manual review."""
    review_capacity_per_day: float = 50.0
    """How many payments the review team can look at per day."""
    review_catch_rate: float = 1.0
    """Share of the frauds sent to review that a reviewer stops."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f"cost model: {f.name} must be a number >= 0, not {value!r}")
        if self.review_catch_rate > 1:
            raise ConfigError(f"cost model: review_catch_rate must be between 0 and 1, not "
                              f"{self.review_catch_rate}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: str = "cost model") -> CostModel:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; the keys are "
                              f"{', '.join(sorted(known))}")
        try:
            return cls(**{k: doc[k] for k in doc})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> CostModel:
        """Read a TOML file: the keys at the top level or under ``[costs]``."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such cost file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        if "costs" in doc:
            if not isinstance(doc["costs"], dict) or len(doc) > 1:
                raise ConfigError(f"{path}: put every key under [costs] or none of them")
            doc = doc["costs"]
        return cls.from_dict(doc, source=str(path))


@dataclass(frozen=True)
class ScoreHistogram:
    """Per risk score 0..100: frauds and good payments, their count and their money."""

    frauds: np.ndarray
    goods: np.ndarray
    fraud_amount: np.ndarray
    good_amount: np.ndarray
    days: float

    @classmethod
    def of(cls, scores: np.ndarray, y: np.ndarray, amounts: np.ndarray,
           days: float) -> ScoreHistogram:
        s = np.asarray(scores, dtype=np.int64)
        if s.size and (s.min() < 0 or s.max() > 100):
            raise ConfigError("risk scores must lie in 0..100")
        y = np.asarray(y, dtype=bool)
        a = np.asarray(amounts, dtype=float)
        return cls(np.bincount(s[y], minlength=SCORES).astype(float),
                   np.bincount(s[~y], minlength=SCORES).astype(float),
                   np.bincount(s[y], weights=a[y], minlength=SCORES),
                   np.bincount(s[~y], weights=a[~y], minlength=SCORES), float(days))


def _above(per_score: np.ndarray) -> np.ndarray:
    """out[n] = sum of per_score[s] for s > n, for n = 0..100 (out[100] = 0)."""
    total = np.cumsum(per_score[::-1])[::-1]  # total[s] = sum over scores >= s
    return np.append(total[1:], 0.0)


def threshold_table(hist: ScoreHistogram, costs: CostModel) -> list[dict[str, float]]:
    """One row per threshold n = 0..100: what flagging ``risk_score > n`` does.

    The row reads as "block if :risk_score: > n" (the block columns and net benefit), and its
    ``flagged_per_day`` is the review volume if the same payments went to review instead.
    """
    frauds, goods = _above(hist.frauds), _above(hist.goods)
    fraud_money, good_money = _above(hist.fraud_amount), _above(hist.good_amount)
    total_frauds, total = hist.frauds.sum(), hist.frauds.sum() + hist.goods.sum()
    total_fraud_money = hist.fraud_amount.sum()
    saved = fraud_money + costs.chargeback_fee * frauds
    lost = costs.margin * good_money + costs.friction * goods
    rows = []
    for n in range(SCORES):
        flagged = frauds[n] + goods[n]
        rows.append({
            "threshold": n,
            "block_rate": flagged / total if total else math.nan,
            "flagged": flagged,
            "flagged_per_day": flagged / hist.days if hist.days else math.nan,
            "frauds_caught": frauds[n],
            "fraud_recall": frauds[n] / total_frauds if total_frauds else math.nan,
            "fraud_money_caught": fraud_money[n],
            "fraud_money_recall": (fraud_money[n] / total_fraud_money if total_fraud_money
                                   else math.nan),
            "good_blocked": goods[n],
            "good_money_blocked": good_money[n],
            "precision": frauds[n] / flagged if flagged else math.nan,
            "net_benefit": saved[n] - lost[n],
        })
    return rows


@dataclass(frozen=True)
class Policy:
    """The best thresholds: block above ``block``, review in (``review``, ``block``]."""

    block: int
    review: int
    net_benefit: float
    reviews_per_day: float
    block_rate: float
    frauds_stopped: float
    fraud_money_stopped: float
    good_blocked: float
    best_block_only: int
    best_block_only_net_benefit: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def rules(self) -> str:
        """The policy in vigil's rule language, ready for ``vigil rules check``."""
        lines = [f"block if :risk_score: > {self.block}"]
        if self.review < self.block:
            lines.append(f"review if :risk_score: > {self.review}")
        return "\n".join(lines) + "\n"


def pair_benefits(hist: ScoreHistogram, costs: CostModel) -> tuple[np.ndarray, np.ndarray]:
    """Net benefit and reviews per day of every (review r, block b) pair, as 101×101 arrays
    indexed [r, b]; pairs with r >= b review nothing."""
    frauds, goods = _above(hist.frauds), _above(hist.goods)
    saved = _above(hist.fraud_amount) + costs.chargeback_fee * frauds
    lost = costs.margin * _above(hist.good_amount) + costs.friction * goods
    flagged = frauds + goods
    r = np.arange(SCORES)[:, None]
    b = np.arange(SCORES)[None, :]
    band = r < b
    reviewed = np.where(band, flagged[r] - flagged[b], 0.0)
    caught_in_review = np.where(band, saved[r] - saved[b], 0.0) * costs.review_catch_rate
    net = (saved[b] - lost[b]) + caught_in_review - costs.review_cost * reviewed
    per_day = reviewed / hist.days if hist.days else np.full_like(reviewed, math.inf)
    return net, per_day


def best_policy(hist: ScoreHistogram, costs: CostModel) -> Policy:
    """The (review, block) pair with the highest net benefit whose review volume fits the
    capacity (ties: the higher thresholds, which touch fewer customers)."""
    net, per_day = pair_benefits(hist, costs)
    allowed = per_day <= costs.review_capacity_per_day + 1e-9
    masked = np.where(allowed, net, -np.inf)
    # scan from the highest thresholds so ties go to fewer flagged payments
    flat = masked[::-1, ::-1].ravel()
    k = int(np.argmax(flat))
    r, b = divmod(k, SCORES)
    r, b = SCORES - 1 - r, SCORES - 1 - b
    if r >= b:
        r = b
    table = threshold_table(hist, costs)
    block_only = np.array([row["net_benefit"] for row in table])
    bo = int(SCORES - 1 - np.argmax(block_only[::-1]))
    row = table[b]
    frauds_review = (table[r]["frauds_caught"] - row["frauds_caught"]) * costs.review_catch_rate
    money_review = ((table[r]["fraud_money_caught"] - row["fraud_money_caught"])
                    * costs.review_catch_rate)
    return Policy(block=b, review=r, net_benefit=float(net[r, b]),
                  reviews_per_day=float(per_day[r, b]), block_rate=float(row["block_rate"]),
                  frauds_stopped=float(row["frauds_caught"] + frauds_review),
                  fraud_money_stopped=float(row["fraud_money_caught"] + money_review),
                  good_blocked=float(row["good_blocked"]), best_block_only=bo,
                  best_block_only_net_benefit=float(block_only[bo]))


def cost_curve(hist: ScoreHistogram, costs: CostModel) -> dict[str, list[float]]:
    """Per block threshold: the net benefit blocking alone, and with the best review band
    that fits the capacity."""
    net, per_day = pair_benefits(hist, costs)
    allowed = per_day <= costs.review_capacity_per_day + 1e-9
    with_review = np.where(allowed, net, -np.inf).max(axis=0)
    block_only = np.diag(net)
    return {"threshold": list(range(SCORES)), "block_only": block_only.tolist(),
            "with_review": with_review.tolist()}
