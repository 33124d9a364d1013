"""Labels as they really arrive: late, partial, and sometimes wrong.

For each fraud *incident* (a stolen card, an account taken over, one tested card), the victim
notices once: the incident is reported or not (``report_share``; the rest of fraud is never
reported), and its payments are reported together, each a little after its own time.
A reported incident gets an *early fraud warning* from the issuer (share
``early_warning_share``, kind ``fraud_report``, log-normal delay with median
``early_warning_median_days``) and/or a *dispute* (kind ``dispute``, log-normal delay with
median ``dispute_median_days``, capped at ``max_delay_days``); an incident without a warning
is always disputed, one with a warning is disputed as well with probability
``dispute_after_warning``. Friendly fraud (truth: legit) is always disputed, as fraud.
Legitimate payments get no label: silence is how a processor learns a payment was good.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate._base import check_float
from vigil.simulate.realistic._legit import SECONDS_PER_DAY


@dataclass(frozen=True)
class LabelModel:
    """How and when fraud becomes known (see the module docstring for the story)."""

    report_share: float = 0.85
    early_warning_share: float = 0.35
    early_warning_median_days: float = 4.0
    early_warning_sigma: float = 0.7
    dispute_after_warning: float = 0.6
    dispute_median_days: float = 30.0
    dispute_sigma: float = 0.6
    max_delay_days: float = 120.0

    def check(self) -> LabelModel:
        """Raise ConfigError on an impossible setting; returns ``self``."""
        for name in ("report_share", "early_warning_share", "dispute_after_warning"):
            check_float(f"LabelModel.{name}", getattr(self, name), minimum=0.0, maximum=1.0,
                        example=0.5)
        for name in ("early_warning_median_days", "dispute_median_days", "max_delay_days"):
            check_float(f"LabelModel.{name}", getattr(self, name), minimum=0.0, strict=True,
                        example=30.0)
        for name in ("early_warning_sigma", "dispute_sigma"):
            check_float(f"LabelModel.{name}", getattr(self, name), minimum=0.0, example=0.6)
        return self

    def draw(self, rng: np.random.Generator, *, t: np.ndarray, incident: np.ndarray,
             report_share: np.ndarray, disputed: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels for some payments: (row, kind code, reported_at in seconds since start).

        ``t``: every payment's time (s); ``incident``: a global incident number for each
        fraud payment, ``-1`` for the others; ``report_share``: per payment, the share of its
        incidents ever reported; ``disputed``: friendly-fraud payments (always disputed).
        Kind codes: 0 ``dispute``, 1 ``fraud_report``. Rows come in payment order, a
        payment's warning before its dispute.
        """
        fraud = np.flatnonzero(incident >= 0)
        inc, first_row = np.unique(incident[fraud], return_index=True)
        n_inc = inc.size
        where = np.searchsorted(inc, incident[fraud])  # incident of each fraud row, 0..n_inc
        reported = rng.random(n_inc) < report_share[fraud[first_row]]
        warned = reported & (rng.random(n_inc) < self.early_warning_share)
        disputed_inc = reported & (~warned | (rng.random(n_inc) < self.dispute_after_warning))
        warn_delay = self._delays(rng, n_inc, self.early_warning_median_days,
                                  self.early_warning_sigma)
        dispute_delay = self._delays(rng, n_inc, self.dispute_median_days, self.dispute_sigma)
        # each payment of an incident a little apart: one call, several statements read
        jitter = rng.uniform(0.0, 6 * 3600.0, size=fraud.size)

        friendly = np.flatnonzero(disputed)
        friendly_delay = self._delays(rng, friendly.size, self.dispute_median_days,
                                      self.dispute_sigma)
        rows = [fraud[warned[where]], fraud[disputed_inc[where]], friendly]
        kinds = [np.ones(rows[0].size, np.int8), np.zeros(rows[1].size, np.int8),
                 np.zeros(friendly.size, np.int8)]
        at = [t[rows[0]] + warn_delay[where][warned[where]] + jitter[warned[where]],
              t[rows[1]] + dispute_delay[where][disputed_inc[where]]
              + jitter[disputed_inc[where]],
              t[friendly] + friendly_delay]
        row, kind, reported_at = (np.concatenate(rows), np.concatenate(kinds),
                                  np.concatenate(at))
        order = np.lexsort((-kind, row))  # by payment; a warning before the dispute
        return row[order], kind[order], np.floor(reported_at[order]).astype(np.int64)

    def _delays(self, rng: np.random.Generator, n: int, median_days: float, sigma: float
                ) -> np.ndarray:
        """Log-normal delays in seconds, at most ``max_delay_days``, at least an hour."""
        days = median_days * np.exp(sigma * rng.standard_normal(n))
        return np.clip(days, 1 / 24, self.max_delay_days) * SECONDS_PER_DAY
