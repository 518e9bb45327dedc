"""Drift detection delay and false alarms (issues 5 and 15).

Concept streams (river synthetic, ``CONCEPTS``): every generator that switches a classification
function and fits a tabular classifier (SEA, Agrawal, STAGGER, Sine, Mixed), several function pairs
each, abrupt (ConceptDriftStream width 50) and gradual (width 2,000); labels with 10% noise (SEA) or
5% flips (the rest). A covariate-only shift of SEA's irrelevant third feature, abrupt and gradual,
for the feature detectors. Every stream has a no-drift control of the same length. Per seed: 2,000
rows train a model (the best of mlauto's logreg / random_forest / hist_gb families by 3-fold CV,
chosen once per generator), 1,000 reference rows (p0), 10,000 monitored rows with the drift at
monitored index 5,000; the stream after the drift has another seed.

1. False alarms per 10k control rows at the defaults (MonitorConf: label_ert, label_shift,
   label_warmup), no per-stream calibration, beside the plug-in CUSUM (p0 taken as exact) and the
   baselines (ADWIN on the error stream, the 3-sigma accuracy rule) at textbook settings.
2. Delay at a matched false-alarm rate: the baselines' knob is calibrated on separate calibration
   seeds' control streams to the budget (0.5 per 10k), the CUSUM runs at its defaults; with the
   information bound ln(ERT * KL) / KL of a CUSUM that knows both error rates.
3. (Full run only) feature detectors on the covariate shift and on pure concept drift.

    PYTHONPATH=$PWD python bench/drift_delay.py --seeds 10 --no-online
    PYTHONPATH=$PWD python bench/drift_delay.py --quick     # 5 streams, 3 seeds, label detectors
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


# Concept drift: (generator, function before, function after). Every river generator that switches a
# classification function (SEA variant, Agrawal/STAGGER/Sine/Mixed classification_function) and fits
# a tabular classifier, several pairs each. Labels: 10% noise on SEA (river's), 5% flips elsewhere.
CONCEPTS = [("sea", 0, 2), ("sea", 1, 3), ("agrawal", 0, 2), ("agrawal", 1, 4), ("agrawal", 3, 7),
            ("stagger", 0, 1), ("stagger", 1, 2), ("sine", 0, 1), ("sine", 2, 3), ("mixed", 0, 1)]
QUICK_CONCEPTS = [("sea", 0, 2), ("agrawal", 0, 2), ("stagger", 0, 1), ("sine", 0, 1), ("mixed", 0, 1)]


def _generator(gen: str, function: int, seed: int) -> Any:
    from river.datasets import synth

    if gen == "sea":
        return synth.SEA(variant=function, noise=0.1, seed=seed)
    cls = {"agrawal": synth.Agrawal, "stagger": synth.STAGGER, "sine": synth.Sine, "mixed": synth.Mixed}[gen]
    return cls(classification_function=function, seed=seed)


def make_stream(kind: str, seed: int, width: int, drift: bool) -> tuple[np.ndarray, np.ndarray]:
    """All N_TRAIN + N_REF + N_MON rows of one stream; the drift (if any) at monitored index DRIFT_AT.
    ``kind``: "gen:before:after" (concept drift), or "covariate" (SEA's irrelevant x3 moves)."""
    from river.datasets import synth

    total, position = N_TRAIN + N_REF + N_MON, N_TRAIN + N_REF + DRIFT_AT
    rng = np.random.default_rng(seed + 7)
    if kind == "covariate":
        kind = "sea:0:0"
    gen, f0, f1 = kind.split(":")[0], int(kind.split(":")[1]), int(kind.split(":")[2])
    before = _generator(gen, f0, seed)
    if not drift:
        X, y = _take(before, total)
    elif f0 == f1:  # same concept; the irrelevant x3 moves by SHIFT, mixed in like river does
        X, y = _take(before, total)
        t = np.arange(total)
        p_new = 1.0 / (1.0 + np.exp(-4.0 * (t - position) / width))
        X[:, 2] += SHIFT * (rng.random(total) < p_new)
    else:
        after = _generator(gen, f1, seed + 10_000)
        X, y = _take(synth.ConceptDriftStream(before, after, position=position, width=width, seed=seed), total)
    if gen != "sea":  # 5% label flips
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


def cusum_alarms(errors: np.ndarray, p0: float, ert: float, shift: float = 0.05, warmup: int = 0,
                 reference_rows: int | None = N_REF) -> list[int]:
    """mlauto's detector; ``reference_rows=None`` is the plug-in threshold (p0 taken as exact)."""
    from mlauto.monitor.label_drift import ErrorRateDetector

    p0 = min(max(p0, 0.01), 0.5)  # as the monitor clamps it
    det = ErrorRateDetector(p0, shift=min(shift, 0.99 - p0), ert=ert, reference_rows=reference_rows, warmup=warmup)
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

    X, y = make_stream(f"{kind}:0:0", 999, 50, False)
    scores = [cross_val_score(FAMILIES.get(n)().build(p, 0), X[:N_TRAIN], y[:N_TRAIN], cv=3).mean()
              for n, p in MODELS]
    return int(np.argmax(scores))


@functools.cache
def prepare(kind: str, seed: int, width: int, drift: bool) -> dict[str, Any]:
    from mlauto.models.families import FAMILIES

    X, y = make_stream(kind, seed, width, drift)
    name, params = MODELS[family_for(kind.split(":")[0] if kind != "covariate" else "sea")]
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
    ap.add_argument("--quick", action="store_true", help="5 concept streams, 3 seeds, label detectors only (<5 min)")
    ap.add_argument("--cache-dir", default=None, help="CVM online thresholds; default: $MLAUTO_CACHE_DIR or "
                    "~/.cache/mlauto/detectors")
    ap.add_argument("--no-online", action="store_true", help="skip the CVM online detector (slow first build)")
    ap.add_argument("--labels-only", action="store_true", help="only the label (error-stream) detectors")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from mlauto.config.schema import MonitorConf

    torch.set_num_threads(1)
    conf = MonitorConf()
    started = time.time()
    if args.quick:
        args.seeds, args.labels_only = min(args.seeds, 3), True
    seeds = list(range(args.seeds))
    calib_seeds = [1000 + s for s in seeds]
    nominal = 1e4 / conf.label_ert

    def default_cusum(s: dict[str, Any]) -> list[int]:
        return cusum_alarms(s["errors"], s["p0"], conf.label_ert, conf.label_shift, conf.label_warmup)

    def plugin_cusum(s: dict[str, Any]) -> list[int]:
        return cusum_alarms(s["errors"], s["p0"], conf.label_ert, conf.label_shift, 0, reference_rows=None)

    baselines: dict[str, tuple[Callable[[dict[str, Any], float], list[int]], list[float], float]] = {
        # name: (run(stream, knob), calibration grid from most to least sensitive, textbook knob)
        "ADWIN": (lambda s, d: adwin_alarms(s["errors"], d), [0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.002, 5e-4, 1e-4],
                  0.002),
        "3-sigma w500": (lambda s, k: sigma_rule_alarms(s["errors"], s["p0"], k),
                         [2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0], 3.0),
    }
    fa_rows: list[str] = []
    delay_rows: list[str] = []
    wins = 0
    compared = 0
    for concept in tqdm(QUICK_CONCEPTS if args.quick else CONCEPTS, desc="streams"):
        kind = ":".join(map(str, concept))
        calib = [prepare(kind, s, 50, False) for s in calib_seeds]
        controls = [prepare(kind, s, 50, False) for s in seeds]
        rows_10k = len(controls) * N_MON / 10_000
        p0_true = float(np.mean([c["errors"].mean() for c in controls]))
        fa = {"CUSUM default": sum(len(default_cusum(c)) for c in controls) / rows_10k,
              "CUSUM plug-in p0": sum(len(plugin_cusum(c)) for c in controls) / rows_10k}
        knobs = {}
        for name, (run, grid, textbook) in baselines.items():
            fa[f"{name} textbook {textbook:g}"] = sum(len(run(c, textbook)) for c in controls) / rows_10k
            knobs[name] = calibrate(run, grid, calib, args.budget)
            fa[f"{name} calibrated {knobs[name]:g}"] = sum(len(run(c, knobs[name])) for c in controls) / rows_10k
        fa_rows.append(f"| {kind} | {p0_true:.3f} | " + " | ".join(f"{v:.2f}" for v in fa.values()) + " |")
        fa_names = list(fa)
        for width, wname in ((50, "abrupt"), (2000, "gradual")):
            drifted = [prepare(kind, s, width, True) for s in seeds]
            mine = summarise([default_cusum(s) for s in drifted], [default_cusum(c) for c in controls])
            base = {n: summarise([run(s, knobs[n]) for s in drifted], [run(c, knobs[n]) for c in controls])
                    for n, (run, _, _) in baselines.items()}
            best = min(b["delay"] for b in base.values())
            compared += 1
            wins += bool(mine["delay"] <= best)
            p1 = float(np.mean([d["errors"][DRIFT_AT + width:].mean() for d in drifted]))
            oracle = ""
            if p1 > p0_true:  # information bound ln(ARL0 * KL) / KL of a CUSUM knowing p0 and p1
                kl = p1 * np.log(p1 / p0_true) + (1 - p1) * np.log((1 - p1) / (1 - p0_true))
                oracle = f"{np.log(conf.label_ert * kl) / kl:.0f}"
            delay_rows.append(f"| {kind} {wname} | {p0_true:.3f} -> {p1:.3f} | {mine['rate']:.2f} | {mine['delay']:.0f} | "
                              + " | ".join(f"{b['rate']:.2f} / {b['delay']:.0f}" for b in base.values())
                              + f" | {oracle} |")

    print(f"\nseeds={args.seeds} (calibration seeds separate) budget={args.budget}/10k  "
          f"label_ert={conf.label_ert:g} (nominal {nominal:.2f}/10k) label_warmup={conf.label_warmup}  "
          f"({time.time() - started:.0f} s)\n")
    print("False alarms per 10k control rows at default settings (no per-stream calibration), and the "
          "baselines calibrated on the calibration seeds:\n")
    print("| stream | p0 | " + " | ".join(fa_names) + " |")
    print("|---|---|" + "---|" * len(fa_names))
    print("\n".join(fa_rows))
    print("\nDelay (rows) after the drift: default CUSUM vs baselines calibrated to the budget "
          "(detection rate / median delay):\n")
    print("| stream | error rate | CUSUM rate | CUSUM delay | " + " | ".join(f"{n} calibrated" for n in baselines)
          + " | oracle bound |")
    print("|---|---|---|---|" + "---|" * len(baselines) + "---|")
    print("\n".join(delay_rows))
    print(f"\ndefault CUSUM no slower than the better calibrated baseline on {wins}/{compared} streams")
    if args.labels_only:
        return
    rows: list[tuple[str, str, dict[str, float], Any]] = []

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
    calib = [prepare("sea:0:2", s, 50, False) for s in calib_seeds]
    controls = [prepare("sea:0:2", s, 50, False) for s in seeds]
    streams = {"covariate abrupt": [prepare("covariate", s, 50, True) for s in seeds],
               "covariate gradual": [prepare("covariate", s, 2000, True) for s in seeds],
               "sea abrupt (concept only)": [prepare("sea:0:2", s, 50, True) for s in seeds]}
    for name, (run, grid) in tqdm(feature.items(), desc="feature detectors"):
        knob = calibrate(run, grid, calib, args.budget) if len(grid) > 1 else grid[0]
        ctrl = [run(s, knob) for s in controls]
        for sname, drifted in streams.items():
            res = summarise([run(s, knob) for s in drifted], ctrl)
            rows.append((sname, f"{name} [calibrated {knob:g}]", res, knob))

    print("\nFeature detectors (calibrated on SEA control streams):\n")
    print("| stream | detector | detection rate | median delay | false alarms /10k (control) |")
    print("|---|---|---|---|---|")
    for sname, dname, r, _ in rows:
        print(f"| {sname} | {dname} | {r['rate']:.2f} | {r['delay']:.0f} | {r['fa']:.2f} |")


if __name__ == "__main__":
    main()
