"""Concept drift from labels: a Bernoulli CUSUM on the stream of prediction errors.

Feature-drift detectors cannot see concept drift, where P(y|X) changes and P(X) does not; the
errors of the model on labelled rows can. The CUSUM is the optimal sequential test for a step
change in a rate: it accumulates the log-likelihood ratio of "error rate ``p1``" against the
reference error rate ``p0`` (known from validation) and alarms when the sum crosses ``h``.
``h`` is set from ``ert``, the expected number of rows between false alarms when nothing
changed (about 20,000 rows meets a budget of 0.5 false alarms per 10k rows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlauto.errors import ConfigError


def cusum_arl(p: float, up: float, down: float, h: float) -> float:
    """Average run length of the CUSUM ``S = max(0, S + (up if error else down))`` until ``S > h``
    when errors arrive at rate ``p``: a Markov chain on a grid over [0, h] (Brook & Evans, 1972),
    fine enough (1/40 of the smaller increment) that rounding does not bias the drift."""
    from scipy.sparse import csr_matrix, identity
    from scipy.sparse.linalg import spsolve

    step = min(h / 200, abs(down) / 40, up / 40)
    n = int(math.ceil(h / step)) + 1
    states = np.arange(n) * step
    rows, cols, vals = [], [], []
    for nxt, prob in ((states + up, p), (np.maximum(0.0, states + down), 1.0 - p)):
        inside = nxt <= h
        rows.append(np.arange(n)[inside])
        cols.append(np.minimum(n - 1, np.rint(nxt[inside] / step).astype(int)))
        vals.append(np.full(inside.sum(), prob))
    q = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    arl = spsolve((identity(n, format="csr") - q).tocsc(), np.ones(n))
    return float(arl[0])


def cusum_threshold(p0: float, p1: float, ert: float) -> float:
    """Threshold ``h`` whose in-control average run length (rows to a false alarm) is ``ert``."""
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    lo, hi = 0.0, 1.0
    while cusum_arl(p0, up, down, hi) < ert:
        lo, hi = hi, hi * 2
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cusum_arl(p0, up, down, mid) < ert else (lo, mid)
    return hi


class ErrorRateDetector:
    """One-sided Bernoulli CUSUM on 0/1 errors against the reference error rate.

    ``reference_error``: the model's error rate on held-out labelled rows (validation). ``shift``:
    the smallest rise in error rate worth catching fast (``p1 = p0 + shift``; larger rises are caught
    faster still). ``ert``: expected rows between false alarms with no drift, or give ``h``
    directly. ``reference_rows`` (how many labelled rows gave ``reference_error``) and ``warmup``:
    after the first ``warmup`` live errors, the reference rate is re-estimated from both (a
    1,000-row reference rate has a standard error of ~0.01, comparable to the shifts worth
    catching); it assumes the model is sound for those first rows. ``update(errors)`` takes a batch of 0/1 errors in arrival order and returns whether and
    at which row of the batch an alarm fired; after an alarm the sum restarts from 0. Picklable:
    its state is a few numbers.
    """

    def __init__(self, reference_error: float, shift: float = 0.05, ert: float = 20_000.0,
                 h: float | None = None, reference_rows: int | None = None, warmup: int = 0) -> None:
        if not 0.0 < reference_error < 1.0:
            raise ConfigError("reference_error", reference_error, "an error rate in (0, 1)",
                              "measure it on held-out labelled rows; 0 or 1 leaves nothing to compare")
        if not 0.0 < shift < 1.0 - reference_error:
            raise ConfigError("shift", shift, f"a rise in error rate in (0, {1.0 - reference_error:.3f})")
        if ert <= 1:
            raise ConfigError("ert", ert, "a number of rows > 1")
        if warmup and not reference_rows:
            raise ConfigError("reference_rows", reference_rows, "the number of rows behind reference_error",
                              "warmup pools the first live errors with the reference; it needs that count")
        self.reference_error = reference_error
        self.shift = shift
        self.ert = ert
        self.h_given = h
        self.reference_rows = reference_rows
        self.warmup = warmup
        self._set_rate(reference_error)
        self.rows_total = 0
        self.errors_total = 0.0
        self.alarms = 0
        self.reset()

    def _set_rate(self, p0: float) -> None:
        p0 = min(max(p0, 1e-4), 1.0 - self.shift - 1e-4)
        self.p0 = p0
        self.p1 = p0 + self.shift
        self.h = self.h_given if self.h_given is not None else cusum_threshold(p0, self.p1, self.ert)
        self.up = math.log(self.p1 / p0)
        self.down = math.log((1 - self.p1) / (1 - p0))

    def reset(self) -> None:
        """Restart the sum (e.g. after the caller acted on an alarm); the rate estimate is kept.
        A new model has its own reference error: build a new detector for it."""
        self.statistic = 0.0
        self.rows = 0  # rows since the last restart

    def update(self, errors: np.ndarray) -> dict[str, Any]:
        """Feed 0/1 errors (1 = wrong prediction); returns alarm info for this batch."""
        errors = np.asarray(errors, dtype=float).ravel()
        if errors.size and not np.isin(errors, (0.0, 1.0)).all():
            raise ConfigError("errors", errors[~np.isin(errors, (0.0, 1.0))][:5].tolist(), "0 or 1 per row")
        at_rows: list[int] = []
        stat, peak = self.statistic, 0.0
        for i, e in enumerate(errors):
            stat = max(0.0, stat + (self.up if e else self.down))
            peak = max(peak, stat)
            self.rows += 1
            if stat > self.h:
                at_rows.append(i)
                stat, self.rows = 0.0, 0
            if self.warmup and self.rows_total + i + 1 == self.warmup:  # pool the warm-up errors into p0
                n_ref = float(self.reference_rows or 0)
                self._set_rate((self.reference_error * n_ref + self.errors_total + errors[: i + 1].sum())
                               / (n_ref + self.warmup))
        self.statistic = stat
        self.rows_total += errors.size
        self.errors_total += float(errors.sum())
        self.alarms += len(at_rows)
        return {
            "is_drift": bool(at_rows),
            "at_row": at_rows[0] if at_rows else None,
            "alarms": at_rows,
            "statistic": peak,
            "threshold": self.h,
            "reference_error": self.p0,
            "rows_since_restart": self.rows,
        }

    def status(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "threshold": self.h, "rows_total": self.rows_total,
                "alarms": self.alarms, "reference_error": self.p0, "p1": self.p1, "ert": self.ert,
                "warmup_done": self.rows_total >= self.warmup}
