"""Drift detection delay and false alarms (issue 5 protocol), every detector calibrated to one budget.

Streams (river synthetic): SEA threshold 8 -> 7 with 10% label noise; Agrawal function 0 -> 2 with
5% label flips; a covariate-only shift of SEA's irrelevant third feature; and for each a no-drift
control stream of the same length. Per seed: 2,000 rows train a model (the best of mlauto's
logreg / random_forest / hist_gb families by 3-fold CV, chosen once per stream kind), 1,000
reference rows, 10,000 monitored rows with the drift at monitored index 5,000 (abrupt: ConceptDriftStream width 50; gradual: width 2,000). The stream after the drift
has a different seed. Label detectors watch the 0/1 error stream; feature detectors the features.

Calibration: each detector's one sensitivity knob is chosen on separate calibration seeds' control
streams as the most sensitive grid value with <= --budget false alarms per 10k rows, then
measured on the evaluation seeds. The baselines also run with their textbook settings.

    PYTHONPATH=$PWD python bench/drift_delay.py --seeds 10
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import time
from collections import deque
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

N_TRAIN, N_REF, N_MON, DRIFT_AT = 2000, 1000, 10_000, 5000
MODELS = [("logreg", {"C": 1.0, "max_iter": 500}), ("random_forest", {"n_estimators": 50, "min_samples_leaf": 5}),
          ("hist_gb", {"max_iter": 100})]
SHIFT = 2.0  # covariate shift of SEA's irrelevant feature (uniform on [0, 10])


# -- streams -------------------------------------------------------------------------------------
def _take(stream: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in stream.take(n):
        xs.append(list(x.values()))
        ys.append(int(y))
    return np.asarray(xs, dtype=np.float64), np.asarray(ys)


def make_stream(kind: str, seed: int, width: int, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    """All N_TRAIN + N_REF + N_MON rows of one stream; the drift (if any) at monitored index DRIFT_AT."""
    from river.datasets import synth

    total, position = N_TRAIN + N_REF + N_MON, N_TRAIN + N_REF + DRIFT_AT
    rng = np.random.default_rng(seed + 7)
    if kind in ("sea", "covariate"):
        before = synth.SEA(variant=0, noise=0.1, seed=seed)  # threshold 8
        after = synth.SEA(variant=2 if kind == "sea" else 0, noise=0.1, seed=seed + 10_000)  # 7
    else:
        before = synth.Agrawal(classification_function=0, seed=seed)
        after = synth.Agrawal(classification_function=2, seed=seed + 10_000)
    if not drift:
        X, y = _take(before, total)
    elif kind == "covariate":  # same concept; the irrelevant x3 moves by SHIFT, mixed in like river does
        X, y = _take(before, total)
        t = np.arange(total)
        p_new = 1.0 / (1.0 + np.exp(-4.0 * (t - position) / width))
        X[:, 2] += SHIFT * (rng.random(total) < p_new)
    else:
        X, y = _take(synth.ConceptDriftStream(before, after, position=position, width=width, seed=seed), total)
    if kind == "agrawal":  # 5% label flips
        flip = rng.random(total) < 0.05
        y = np.where(flip, 1 - y, y)
    return X, y


# -- detectors: each maps a monitored stream to alarm row indices ---------------------------------
def adwin_alarms(errors: np.ndarray, delta: float) -> list[int]:
    from river.drift import ADWIN

    det, out = ADWIN(delta=delta), []
    for i, e in enumerate(errors):
        det.update(float(e))
        if det.drift_detected:
            out.append(i)
    return out


def sigma_rule_alarms(errors: np.ndarray, p0: float, k: float, window: int = 500) -> list[int]:
    """Accuracy over the last ``window`` labels below reference accuracy - k sigma; restart after an alarm."""
    limit = p0 + k * np.sqrt(p0 * (1 - p0) / window)  # on the error rate
    buf: deque[float] = deque(maxlen=window)
    total, out = 0.0, []
    for i, e in enumerate(errors):
        if len(buf) == window:
            total -= buf[0]
        buf.append(float(e))
        total += float(e)
        if len(buf) == window and total / window > limit:
            out.append(i)
            buf.clear()
            total = 0.0
    return out


def cusum_alarms(errors: np.ndarray, p0: float, ert: float, shift: float = 0.05, warmup: int = 0) -> list[int]:
    from mlauto.monitor.label_drift import ErrorRateDetector

    det = ErrorRateDetector(p0, shift=shift, ert=ert, reference_rows=N_REF if warmup else None, warmup=warmup)
    return det.update(errors)["alarms"]


def window_scores(name: str, ref: np.ndarray, X: np.ndarray, window: int, **options: Any) -> np.ndarray:
    """Tumbling-window detector scored once per window: rows (last row of each window) and the
    smallest p_val setting that would not alarm there (Bonferroni: min p * features; MMD: its p)."""
    from mlauto.monitor.detectors import make_detector

    det = make_detector(name, ref, 0.05, **options)
    out = []
    for start in range(0, len(X) - window + 1, window):
        res = det.test(X[start : start + window])
        score = res["p_val"] if "p_val" in res else min(res["p_vals"]) * len(res["p_vals"])
        out.append((start + window - 1, score))
    return np.array(out)


_SCORES: dict[tuple[str, int], np.ndarray] = {}


def window_alarms(name: str, s: dict[str, Any], p_val: float, window: int, **options: Any) -> list[int]:
    """Alarms at level ``p_val``: windows are scored once per stream and reused across levels."""
    key = (name, id(s))
    if key not in _SCORES:
        _SCORES[key] = window_scores(name, s["ref"], s["X"], window, **options)
    scores = _SCORES[key]
    return [int(r) for r, p in scores if p < p_val]


def online_alarms(ref: np.ndarray, X: np.ndarray, ert: float, cache_dir: str | None) -> list[int]:
    from mlauto.monitor.detectors import make_detector

    det = make_detector("cvm_online", ref, 0.05, ert=ert, window_sizes=[30], n_ref=300,
                        n_bootstraps=int(np.ceil(1.6 * ref.shape[1] * ert)), cache_dir=cache_dir)
    res = det.test(X)
    return res["alarms"]


# -- protocol ------------------------------------------------------------------------------------
@functools.cache
def family_for(kind: str) -> int:
    """As mlauto's tune does, pick the best family (3-fold CV on a training sample), once per stream kind."""
    from sklearn.model_selection import cross_val_score

    from mlauto.models.families import FAMILIES

    X, y = make_stream(kind, 999, 50, False)
    scores = [cross_val_score(FAMILIES.get(n)().build(p, 0), X[:N_TRAIN], y[:N_TRAIN], cv=3).mean()
              for n, p in MODELS]
    return int(np.argmax(scores))


@functools.cache
def prepare(kind: str, seed: int, width: int, drift: bool) -> dict[str, Any]:
    from mlauto.models.families import FAMILIES

    X, y = make_stream(kind, seed, width, drift)
    name, params = MODELS[family_for("agrawal" if kind == "agrawal" else "sea")]
    model = FAMILIES.get(name)().build(params, seed).fit(X[:N_TRAIN], y[:N_TRAIN])
    ref = slice(N_TRAIN, N_TRAIN + N_REF)
    mon = slice(N_TRAIN + N_REF, None)
    ref_err = (model.predict(X[ref]) != y[ref]).astype(float)
    return {"ref": X[ref].astype(np.float32), "X": X[mon].astype(np.float32), "p0": float(ref_err.mean()),
            "errors": (model.predict(X[mon]) != y[mon]).astype(float)}


def summarise(alarms: list[list[int]], controls: list[list[int]]) -> dict[str, float]:
    firsts = [next((a for a in al if a >= DRIFT_AT), None) for al in alarms]
    delays = [f - DRIFT_AT for f in firsts if f is not None]
    fa = sum(len(c) for c in controls) / (len(controls) * N_MON / 10_000)
    return {"rate": len(delays) / len(alarms), "delay": float(np.median(delays)) if delays else float("nan"),
            "fa": fa}


def calibrate(run: Callable[[dict[str, Any], float], list[int]], grid: list[float], calib: list[dict[str, Any]],
              budget: float) -> float:
    """Most sensitive knob (grid ordered from most to least sensitive) within the false-alarm budget."""
    for knob in grid:
        fa = sum(len(run(s, knob)) for s in calib) / (len(calib) * N_MON / 10_000)
        if fa <= budget:
            return knob
    return grid[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=float, default=0.5, help="false alarms per 10k control rows")
    ap.add_argument("--cache-dir", default=None, help="CVM online thresholds; default: $MLAUTO_CACHE_DIR or "
                    "~/.cache/mlauto/detectors")
    ap.add_argument("--no-online", action="store_true", help="skip the CVM online detector (slow first build)")
    ap.add_argument("--labels-only", action="store_true", help="only the label (error-stream) detectors")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    started = time.time()
    seeds = list(range(args.seeds))
    calib_seeds = [1000 + s for s in seeds]

    label: dict[str, tuple[Callable[[dict[str, Any], float], list[int]], list[float], float]] = {
        # name: (run(stream, knob), calibration grid from most to least sensitive, textbook knob)
        "ADWIN errors (baseline)": (lambda s, d: adwin_alarms(s["errors"], d), [0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.002, 5e-4, 1e-4], 0.002),
        "accuracy 3-sigma w500 (baseline)": (lambda s, k: sigma_rule_alarms(s["errors"], s["p0"], k),
                                             [2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0], 3.0),
        "CUSUM errors (mlauto)": (lambda s, e: cusum_alarms(s["errors"], s["p0"], e),
                                  [2000, 5000, 10000, 20000, 30000, 40000, 60000, 80000, 160000], 20000),
        # the same, with the first 2,000 live errors pooled into the reference error rate
        "CUSUM errors + warmup 2000 (mlauto)": (lambda s, e: cusum_alarms(s["errors"], s["p0"], e, warmup=2000),
                                                [2000, 5000, 10000, 20000, 30000, 40000, 60000, 80000, 160000],
                                                20000),
    }
    rows: list[tuple[str, str, dict[str, float], Any]] = []
    for kind in ("sea", "agrawal"):
        calib = [prepare(kind, s, 50, False) for s in tqdm(calib_seeds, desc=f"{kind} calibration")]
        controls = [prepare(kind, s, 50, False) for s in tqdm(seeds, desc=f"{kind} control")]
        for width, wname in ((50, "abrupt"), (2000, "gradual")):
            drifted = [prepare(kind, s, width, True) for s in tqdm(seeds, desc=f"{kind} {wname}")]
            for name, (run, grid, textbook) in label.items():
                knobs = [("calibrated", calibrate(run, grid, calib, args.budget))]
                if "baseline" in name:
                    knobs.insert(0, ("textbook", textbook))
                for how, knob in knobs:
                    res = summarise([run(s, knob) for s in drifted], [run(s, knob) for s in controls])
                    rows.append((f"{kind} {wname}", f"{name} [{how} {knob:g}]", res, knob))

    # Feature detectors on the covariate shift and the pure concept drift (SEA abrupt).
    feature: dict[str, tuple[Callable[[dict[str, Any], float], list[int]], list[float]]] = {
        "ks w100": (lambda s, p: window_alarms("ks", s, p, 100), [0.05, 0.02, 0.01, 0.005, 0.002, 0.001]),
        "cvm w100": (lambda s, p: window_alarms("cvm", s, p, 100), [0.05, 0.02, 0.01, 0.005, 0.002, 0.001]),
        "mmd w100": (lambda s, p: window_alarms("mmd", s, p, 100, n_ref=300, n_permutations=500),
                     [0.02, 0.01, 0.005, 0.002]),
    }
    if args.labels_only:
        feature = {}
    if not args.no_online and not args.labels_only:
        feature["cvm_online"] = (lambda s, e: online_alarms(s["ref"], s["X"], e, args.cache_dir), [20000])
    calib = [prepare("sea", s, 50, False) for s in calib_seeds]
    controls = [prepare("sea", s, 50, False) for s in seeds]
    streams = {"covariate abrupt": [prepare("covariate", s, 50, True) for s in seeds],
               "sea abrupt (concept only)": [prepare("sea", s, 50, True) for s in seeds]}
    for name, (run, grid) in tqdm(feature.items(), desc="feature detectors"):
        knob = calibrate(run, grid, calib, args.budget) if len(grid) > 1 else grid[0]
        ctrl = [run(s, knob) for s in controls]
        for sname, drifted in streams.items():
            res = summarise([run(s, knob) for s in drifted], ctrl)
            rows.append((sname, f"{name} [calibrated {knob:g}]", res, knob))

    print(f"\nseeds={args.seeds} budget={args.budget}/10k  ({time.time() - started:.0f} s)\n")
    print("| stream | detector | detection rate | median delay | false alarms /10k (control) |")
    print("|---|---|---|---|---|")
    for sname, dname, r, _ in rows:
        print(f"| {sname} | {dname} | {r['rate']:.2f} | {r['delay']:.0f} | {r['fa']:.2f} |")
    print("\nratio of median delay to the calibrated baselines (lower is better):")
    for sname in dict.fromkeys(r[0] for r in rows):
        for mine in [r for r in rows if r[0] == sname and "CUSUM" in r[1]]:
            for base in [r for r in rows if r[0] == sname and "baseline" in r[1] and "calibrated" in r[1]]:
                print(f"  {sname}: {mine[1]} / {base[1]} = {mine[2]['delay'] / base[2]['delay']:.2f}")


if __name__ == "__main__":
    main()
