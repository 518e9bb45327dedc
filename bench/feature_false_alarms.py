"""Realized false alarms of the feature-drift detectors on held-out, no-drift rows (issue 15).

For each dataset, repeated random splits: the reference (the detector's "training features") is
60% of the rows, the rest is the live stream, cut into tumbling windows. Each window is scored once
(per-feature detectors: the smallest Bonferroni-adjusted p-value, ``min p * d``, and the
Benjamini-Hochberg one, ``min p_(i) * d / i``; MMD: its permutation p-value), so the alarm rate at
any ``p_val`` comes from the same windows. Rate = share of windows alarming * 10,000 / window:
alarms per 10k rows, like the label detectors (both start retrains).

Datasets: scikit-learn's bundled breast_cancer, wine, iris, digits (integer pixels: ties) and
diabetes, and two synthetic ones (make_classification, 20 continuous features; and 8 continuous +
4 integer-coded + 4 binary columns).

    PYTHONPATH=$PWD python bench/feature_false_alarms.py            # ~10 min on the shared 2-core machine
    PYTHONPATH=$PWD python bench/feature_false_alarms.py --quick    # fewer splits, no MMD
    PYTHONPATH=$PWD python bench/feature_false_alarms.py --online-only --online-rows 100000

``--online-only``: the online CVM (cvm_online.yaml: ert 20,000, window 30, n_ref 300) on 30-feature
data, whose simulated thresholds are cached (other feature counts need their own, minutes each):
breast_cancer (repeated splits, as above) and two long synthetic streams (independent Gaussian
features, as Alibi's ERT assumes; and make_classification's correlated ones), reference 1,000 rows.
Alarms per 10k rows; after each alarm the detector restarts, as in the monitor.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

import numpy as np


def datasets(seed: int = 0) -> dict[str, np.ndarray]:
    from sklearn import datasets as ds

    rng = np.random.default_rng(seed)
    X_syn, _ = ds.make_classification(4000, 20, n_informative=6, random_state=seed)
    mixed = np.column_stack([rng.normal(size=(4000, 8)), rng.poisson(3, size=(4000, 4)),
                             rng.random((4000, 4)) < 0.3]).astype(float)
    return {"breast_cancer": ds.load_breast_cancer().data, "wine": ds.load_wine().data, "iris": ds.load_iris().data,
            "digits": ds.load_digits().data, "diabetes": ds.load_diabetes().data,
            "synthetic gaussian 20": X_syn, "synthetic mixed 16": mixed}


def scores(name: str, X: np.ndarray, window: int, splits: int, split_seed: int, **options: Any) -> dict[str, np.ndarray]:
    """Per-window scores over ``splits`` random reference/stream splits."""
    from mlauto.monitor.detectors import make_detector

    X = X[:, X.std(axis=0) > 0]  # constant columns (digits' borders): no test
    rng = np.random.default_rng(split_seed)  # (not seed: MMD's options have their own)
    bonf, fdr, single = [], [], []
    for _ in range(splits):
        order = rng.permutation(len(X))
        n_ref = int(0.6 * len(X))
        ref, live = X[order[:n_ref]], X[order[n_ref:]]
        categorical = [j for j in range(X.shape[1]) if set(np.unique(X[:, j])) <= {0.0, 1.0}]
        det = make_detector(name, ref, 0.05, categorical if name == "tabular" else None, **options)
        for start in range(0, len(live) - window + 1, window):
            res = det.test(live[start: start + window])  # tabular no longer raises on a constant 0/1 column
            p = np.sort(np.asarray(res["p_vals"], dtype=float))
            d = len(p)
            bonf.append(p[0] * d)
            fdr.append(float(np.min(p * d / np.arange(1, d + 1))))
            if "p_val" in res:
                single.append(res["p_val"])
    return {"bonferroni": np.array(bonf), "fdr": np.array(fdr), "single": np.array(single)}


def online_rate(X: np.ndarray, rows: int, seed: int, splits: int = 0) -> tuple[int, int]:
    """Alarms and rows of cvm_online at its defaults: ``splits`` random 60/40 splits of ``X`` (a small
    dataset), or (``splits`` 0) 1,000 reference rows and a stream of ``rows`` more."""
    import yaml

    from mlauto.monitor.detectors import make_detector

    path = os.path.join(os.path.dirname(__file__), "..", "mlauto", "conf", "monitor", "online.yaml")
    options = yaml.safe_load(open(path))["options"]
    rng = np.random.default_rng(seed)
    alarms = seen = 0
    pairs = []
    if splits:
        for _ in range(splits):
            order = rng.permutation(len(X))
            n_ref = int(0.6 * len(X))
            pairs.append((X[order[:n_ref]], X[order[n_ref:]]))
    else:
        pairs.append((X[:1000], X[1000: 1000 + rows]))
    for ref, live in pairs:
        det = make_detector("cvm_online", ref, 0.05, **options)
        for start in range(0, len(live), 500):
            alarms += len(det.test(live[start: start + 500])["alarms"])
        seen += len(live)
    return alarms, seen


def online_main(rows: int, seed: int) -> None:
    from sklearn import datasets as ds

    rng = np.random.default_rng(seed)
    bc = ds.load_breast_cancer().data
    data = {"breast_cancer (splits)": (bc, max(1, min(rows, 30_000) // 228)),  # ~1 s per split to build
            "gaussian 30 independent": (rng.normal(size=(rows + 1000, 30)), 0),
            "make_classification 30": (ds.make_classification(rows + 1000, 30, n_informative=10, random_state=seed)[0], 0)}
    print("| data | rows | alarms | alarms / 10k | nominal |")
    print("|---|---|---|---|---|")
    for name, (X, splits) in data.items():
        started = time.time()
        a, n = online_rate(X, rows, seed, splits)
        print(f"| {name} | {n} | {a} | {a * 1e4 / n:.2f} | 0.50 | ({time.time() - started:.0f} s)", flush=True)


def rate(score: np.ndarray, p_val: float, window: int) -> float:
    return float(np.mean(score < p_val) * 1e4 / window) if len(score) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a third of the splits, no MMD")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--online-only", action="store_true", help="only cvm_online at its defaults (30-feature data)")
    ap.add_argument("--online-rows", type=int, default=100_000)
    ap.add_argument("--detectors", nargs="*", default=None, help="only these (e.g. mmd)")
    ap.add_argument("--mmd-windows", type=int, default=60, help="MMD windows (200 rows) per dataset")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.time()
    from mlauto.config.schema import MonitorConf

    conf = MonitorConf()
    if args.online_only:
        online_main(args.online_rows, args.seed)
        return
    # (detector, window, options, [(label, score kind, p_val)])
    ks_levels = [("old default p 0.05", "bonferroni", 0.05), (f"default p {conf.p_val:g}", "bonferroni", conf.p_val),
                 (f"fdr p {conf.p_val:g}", "fdr", conf.p_val)]
    setups: list[tuple[str, int, dict[str, Any], list[tuple[str, str, float]]]] = [
        ("ks", conf.window, {}, ks_levels),
        ("scipy_ks", conf.window, {}, ks_levels[:2]),
        ("cvm", conf.window, {}, ks_levels[:2]),
        ("tabular", conf.window, {}, ks_levels[:2]),
    ]
    if not args.quick:
        setups.append(("mmd", 200, {"n_ref": 1000, "n_permutations": 1000, "seed": 0},
                       [("mmd.yaml p 0.01", "single", 0.01), ("p 0.05", "single", 0.05)]))
    setups = [x for x in setups if not args.detectors or x[0] in args.detectors]
    data = datasets(args.seed)
    print("| detector | window | level | " + " | ".join(data) + " | nominal |")
    print("|---|---|---|" + "---|" * len(data) + "---|")
    for name, window, options, levels in setups:
        per: dict[str, dict[str, np.ndarray]] = {}
        for dname, X in data.items():
            rows_per_split = int(0.4 * len(X))
            target_windows = (args.mmd_windows if name == "mmd" else 600) // (3 if args.quick else 1)
            splits = max(1, int(np.ceil(target_windows / max(1, rows_per_split // window))))
            if rows_per_split < window:
                continue
            per[dname] = scores(name, X, window, splits, args.seed, **options)
        for label, kind, p_val in levels:
            cells = [f"{rate(per[d][kind], p_val, window):.2f}" if d in per else "–" for d in data]
            print(f"| {name} | {window} | {label} | " + " | ".join(cells) + f" | {p_val * 1e4 / window:.2f} |",
                  flush=True)
    print(f"\n({time.time() - started:.0f} s; alarms per 10k rows; nominal = p_val * 10,000 / window, an upper "
          "bound for Bonferroni)")


if __name__ == "__main__":
    main()
