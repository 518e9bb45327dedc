"""Concept drift from labels: a Bernoulli CUSUM on the stream of prediction errors.

Feature-drift detectors cannot see concept drift, where P(y|X) changes and P(X) does not; the
errors of the model on labelled rows can. The CUSUM is the optimal sequential test for a step
change in a rate: it accumulates the log-likelihood ratio of "error rate ``p1``" against the
reference error rate ``p0`` (known from validation) and alarms when the sum crosses ``h``.
``h`` is set from ``ert``, the expected number of rows between false alarms when nothing
changed (about 20,000 rows meets a budget of 0.5 false alarms per 10k rows).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from mlauto.errors import ConfigError

QUADRATURE_NODES = 12
# The threshold is solved for a mean false-alarm rate MARGIN times below 1 / ert. The per-stream
# rate is skewed (a reference that came out low alarms several times, most streams never), so a
# 10-seed stream at exactly the nominal mean exceeds 1.5x nominal ~14% of the time; at 1.25 below
# it 3-5% (bench/README.md, issue 15). Costs ~5% of the delay to a +0.05 rise (ln 1.25 / KL rows).
MARGIN = 1.25
FIRST_POOL = 250  # first live labels pooled into p0; then at 500, 1,000, ... up to ``warmup``


def cusum_arl(p: float, up: float, down: float, h: float, resolution: int = 10) -> float:
    """Average run length of the CUSUM ``S = max(0, S + (up if error else down))`` until ``S > h``
    when errors arrive at rate ``p``: a Markov chain on a grid over [0, h] (Brook & Evans, 1972).
    A step that lands between grid points is split between its two neighbours in proportion, so
    the chain keeps the exact drift ``p * up + (1 - p) * down`` (rounding to the nearest point
    biases it, and the run length is exponential in the drift); ``resolution`` grid points per
    the smaller increment are then enough (within ~1% of a grid 4x finer)."""
    from scipy.sparse import csr_matrix, identity
    from scipy.sparse.linalg import spsolve

    step = min(h / (5 * resolution), abs(down) / resolution, up / resolution)
    n = int(math.ceil(h / step)) + 1
    states = np.arange(n) * step
    rows, cols, vals = [], [], []
    for nxt, prob in ((states + up, p), (np.maximum(0.0, states + down), 1.0 - p)):
        inside = nxt <= h
        pos = nxt[inside] / step
        low = np.floor(pos).astype(int)
        frac = pos - low
        for col, weight in ((np.minimum(low, n - 1), 1.0 - frac), (np.minimum(low + 1, n - 1), frac)):
            rows.append(np.arange(n)[inside])
            cols.append(col)
            vals.append(prob * weight)
    q = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    arl = spsolve((identity(n, format="csr") - q).tocsc(), np.ones(n))
    return float(arl[0])


def cusum_threshold(p0: float, p1: float, ert: float) -> float:
    """Threshold ``h`` whose in-control average run length (rows to a false alarm) is ``ert``,
    when the error rate is known to be ``p0``."""
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    lo, hi = 0.0, 1.0
    while cusum_arl(p0, up, down, hi) < ert:
        lo, hi = hi, hi * 2
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cusum_arl(p0, up, down, mid) < ert else (lo, mid)
    return hi


def _rate_nodes(p0: float, rows: int, nodes: int = QUADRATURE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Where the true error rate may be, given ``p0`` measured on ``rows`` rows: Gauss-Hermite nodes
    of a standard normal mapped through the Jeffreys posterior Beta(k + 1/2, n - k + 1/2), and their
    weights (sum 1). The false-alarm rate is a steep, convex function of the true rate, so the tail
    nodes matter: Gauss-Hermite reaches ~4 standard errors out with 12 nodes."""
    from scipy.stats import beta, norm

    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    k = p0 * rows
    p = beta.ppf(norm.cdf(z), k + 0.5, rows - k + 0.5)
    return np.clip(p, 1e-6, 1 - 1e-6), w / w.sum()


GRID = 0.01  # predictive thresholds are solved on this grid of p0 and interpolated between


def predictive_threshold(p0: float, shift: float, ert: float, rows: int) -> float:
    """``predictive_threshold_at`` interpolated linearly between the two nearest grid values of
    ``p0`` (``h`` moves by ~0.01 per 0.01 of ``p0``, ~1% of the false-alarm rate), so the few
    solves are cached and reused by every detector and replicate with a nearby ``p0``."""
    lo = math.floor(p0 / GRID) * GRID
    hi = lo + GRID
    if lo <= 0.0 or hi + shift >= 1.0:
        return predictive_threshold_at(p0, shift, ert, rows)
    t = (p0 - lo) / GRID
    return ((1 - t) * predictive_threshold_at(round(lo, 6), shift, ert, rows)
            + t * predictive_threshold_at(round(hi, 6), shift, ert, rows))


@functools.lru_cache(maxsize=1024)
def predictive_threshold_at(p0: float, shift: float, ert: float, rows: int) -> float:
    """Threshold ``h`` of the CUSUM designed for ``p0 -> p0 + shift`` whose false-alarm rate,
    averaged over where the true error rate may be (``p0`` was measured on ``rows`` rows), is
    ``1 / ert``.

    A plug-in threshold (``cusum_threshold``) treats ``p0`` as exact; when the estimate comes out
    low (half the time), every later row looks like drift and false alarms run 3-4x the nominal
    rate (issue 15). Averaging the alarm rate ``1 / ARL(p)`` over the posterior of the true rate
    and solving for ``h`` makes ``ert`` hold on average over reference samples; as ``rows`` grows,
    ``h`` falls back to the plug-in threshold. Cached: the same (p0, rows) comes back after a
    restart.
    """
    p1 = p0 + shift
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    ps, ws = _rate_nodes(p0, rows)
    target = -math.log(ert)

    def log_rate(h: float) -> float:
        return math.log(sum(w / cusum_arl(float(p), up, down, h) for p, w in zip(ps, ws)))

    lo, hi = 0.5 * math.log(ert), math.log(ert)  # h is near ln(ert) for the shifts worth catching
    f_lo, f_hi = log_rate(lo), log_rate(hi)
    while f_lo < target:
        hi, f_hi, lo = lo, f_lo, lo / 2
        f_lo = log_rate(lo)
    while f_hi > target:
        lo, f_lo, hi = hi, f_hi, hi * 1.5
        f_hi = log_rate(hi)
    side = 0
    for _ in range(40):  # Illinois regula falsi on the (nearly linear) log rate
        h = hi - (f_hi - target) * (hi - lo) / (f_hi - f_lo)
        f = log_rate(h)
        if abs(f - target) < 0.01:  # 1% of the rate
            return h
        if f > target:
            lo, f_lo = h, f
            if side == -1:
                f_hi = target + (f_hi - target) / 2
            side = -1
        else:
            hi, f_hi = h, f
            if side == 1:
                f_lo = target + (f_lo - target) / 2
            side = 1
    return hi


class ErrorRateDetector:
    """One-sided Bernoulli CUSUM on 0/1 errors against the reference error rate.

    ``reference_error``: the model's error rate on held-out labelled rows (validation). ``shift``:
    the smallest rise in error rate worth catching fast (``p1 = p0 + shift``; larger rises are caught
    faster still). ``ert``: expected rows between false alarms with no drift, or give ``h``
    directly. ``reference_rows``: how many labelled rows gave ``reference_error``; with it the
    threshold accounts for the estimate's uncertainty (``predictive_threshold``: ``ert`` holds on
    average over reference samples), without it ``reference_error`` is taken as exact (the plug-in
    threshold, whose realized false alarms run 3-4x nominal when ``p0`` comes from ~1,000 rows).
    ``warmup``: live errors are pooled into the reference rate in stages (after 250, 500, 1,000, ...
    live labels, then at ``warmup``), each time re-solving the threshold for the rows now behind
    ``p0`` (a tighter threshold, so later drifts are caught sooner, and a reference that came out
    low is corrected within a few hundred rows instead of alarming until the end of a single
    warm-up); it assumes the model is sound for those first rows (the CUSUM watches them against
    the current reference meanwhile). ``margin``: the threshold's mean false-alarm rate is
    ``1 / (margin * ert)`` (``MARGIN``), so that the realized rate of one stream stays under 1.5x
    ``1 / ert`` despite the spread between streams. ``update(errors)`` takes a batch of 0/1
    errors in arrival order and returns whether and at which row of the batch an alarm fired;
    after an alarm the sum restarts from 0. Picklable: its state is a few numbers.
    """

    rows_behind: int | None = None  # detectors pickled before issue 15 took p0 as exact
    margin: float = 1.0  # detectors pickled before the margin: as they were
    next_pool: int = 0  # live rows at which p0 is pooled next; 0: done

    def __init__(self, reference_error: float, shift: float = 0.05, ert: float = 20_000.0,
                 h: float | None = None, reference_rows: int | None = None, warmup: int = 0,
                 margin: float = MARGIN) -> None:
        if not 0.0 < reference_error < 1.0:
            raise ConfigError("reference_error", reference_error, "an error rate in (0, 1)",
                              "measure it on held-out labelled rows; 0 or 1 leaves nothing to compare")
        if not 0.0 < shift < 1.0 - reference_error:
            raise ConfigError("shift", shift, f"a rise in error rate in (0, {1.0 - reference_error:.3f})")
        if ert <= 1:
            raise ConfigError("ert", ert, "a number of rows > 1")
        if margin < 1.0:
            raise ConfigError("margin", margin, "a factor >= 1 (1: the mean rate is 1 / ert)")
        if warmup and not reference_rows:
            raise ConfigError("reference_rows", reference_rows, "the number of rows behind reference_error",
                              "warmup pools the first live errors with the reference; it needs that count")
        self.reference_error = reference_error
        self.shift = shift
        self.ert = ert
        self.h_given = h
        self.reference_rows = reference_rows
        self.warmup = warmup
        self.margin = margin
        self.next_pool = min(FIRST_POOL, warmup)
        self.rows_behind = reference_rows  # labelled rows behind the current p0
        self._set_rate(reference_error)
        self.rows_total = 0
        self.errors_total = 0.0
        self.alarms = 0
        self.reset()

    def _set_rate(self, p0: float) -> None:
        p0 = min(max(p0, 1e-4), 1.0 - self.shift - 1e-4)
        self.p0 = p0
        self.p1 = p0 + self.shift
        if self.h_given is not None:
            self.h = self.h_given
        elif self.rows_behind:
            self.h = predictive_threshold(p0, self.shift, float(self.ert * self.margin), int(self.rows_behind))
        else:
            self.h = cusum_threshold(p0, self.p1, self.ert)
        self.up = math.log(self.p1 / p0)
        self.down = math.log((1 - self.p1) / (1 - p0))

    def _pool(self, live: int, live_errors: float) -> None:
        """p0 from the reference and the first ``live`` labels; the next stage doubles them."""
        if live > self.warmup:  # restored from a detector saved past its warm-up: nothing to pool
            self.next_pool = 0
            return
        n_ref = float(self.reference_rows or 0)
        self.rows_behind = int(n_ref) + live
        self._set_rate((self.reference_error * n_ref + live_errors) / (n_ref + live))
        self.next_pool = 0 if live >= self.warmup else min(2 * live, self.warmup)

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
            if self.next_pool and self.rows_total + i + 1 >= self.next_pool:  # pool the live errors so far
                self._pool(self.rows_total + i + 1, self.errors_total + float(errors[: i + 1].sum()))
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
                "warmup_done": not self.next_pool, "reference_rows": self.rows_behind}
