"""Why the label CUSUM realized more false alarms on river control streams than in simulation (issue 15).

Part 1, river controls (bench/drift_delay.py's streams, no drift): per seed the reference error
rate p0 (1,000 rows), the monitored error rate (10,000 rows), the lag-1 autocorrelation of the 0/1
errors, the CUSUM's alarms at the defaults, and the share of a stream's error rows it has in common
with the first stream of the same seed. ``--shared-flips`` rebuilds the streams as the bench did
before (one label-flip generator, seed + 7, for every generator).

Part 2, Bernoulli simulation (no model, no river): how far one stream's realized rate, the mean of
``--seeds`` replicates of 10,000 rows, spreads around the mean, with p0 from 1,000 rows per replicate.

    PYTHONPATH=$PWD nice -n 19 python bench/drift_diagnose.py --shared-flips   # the old bench
    PYTHONPATH=$PWD nice -n 19 python bench/drift_diagnose.py                  # as the bench runs now
    PYTHONPATH=$PWD nice -n 19 python bench/drift_diagnose.py --all --seeds 20 --no-simulation  # every pair
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drift_delay as dd  # noqa: E402

KINDS = ["stagger:0:1", "agrawal:0:2", "agrawal:1:4", "agrawal:3:7", "sine:0:1", "mixed:0:1", "sea:0:2"]


def river_part(kinds: list[str], seeds: int) -> None:
    from mlauto.config.schema import MonitorConf

    conf = MonitorConf()
    errors: dict[tuple[str, int], np.ndarray] = {}
    print("| stream | model | mean p0 (reference) | mean error rate (monitored) | lag-1 autocorrelation (range) "
          "| alarms / 10k (default) | seeds alarming | alarms / 10k (margin 1) | error rows shared with " + kinds[0] + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        p0s, pm, ac, alarms, plain = [], [], [], [], []
        for s in range(seeds):
            st = dd.prepare(kind, s, 50, "none")
            e = errors[(kind, s)] = st["errors"]
            p0s.append(st["p0"])
            pm.append(e.mean())
            ac.append(np.corrcoef(e[:-1], e[1:])[0, 1])
            alarms.append(len(dd.cusum_alarms(e, st["p0"], conf.label_ert, conf.label_shift, conf.label_warmup)))
            plain.append(len(dd.cusum_alarms(e, st["p0"], conf.label_ert, conf.label_shift, conf.label_warmup, margin=1.0)))
        shared = np.mean([np.sum(errors[(kind, s)] * errors[(kinds[0], s)]) / max(errors[(kind, s)].sum(), 1)
                          for s in range(seeds)])
        print(f"| {kind} | {dd.MODELS[dd.family_for(dd._base(kind))][0]} | {np.mean(p0s):.4f} | {np.mean(pm):.4f} | "
              f"{np.mean(ac):+.3f} ({min(ac):+.3f}..{max(ac):+.3f}) | {sum(alarms) / seeds:.2f} | "
              f"{np.mean(np.array(alarms) > 0):.1f} | {sum(plain) / seeds:.2f} | {shared:.2f} |", flush=True)
        dd.prepare.cache_clear()


def simulate(p: float, replicates: int, margin: float, seed: int = 1) -> np.ndarray:
    """Alarms in 10,000 no-drift rows per replicate, the detector at the defaults but ``margin``."""
    from mlauto.config.schema import MonitorConf
    from mlauto.monitor.label_drift import ErrorRateDetector

    conf, rng = MonitorConf(), np.random.default_rng(seed)
    dets = [ErrorRateDetector(float(r), conf.label_shift, conf.label_ert, reference_rows=1000,
                              warmup=conf.label_warmup, margin=margin)
            for r in rng.binomial(1000, p, replicates) / 1000]
    errors = rng.random((10_000, replicates)) < p
    params = lambda: [np.array([getattr(d, k) for d in dets]) for k in ("up", "down", "h")]  # noqa: E731
    up, down, h = params()
    stat, alarms, fed = np.zeros(replicates), np.zeros(replicates, dtype=int), 0
    for t in range(len(errors)):
        stat = np.maximum(0.0, stat + np.where(errors[t], up, down))
        alarms += stat > h
        stat[stat > h] = 0.0
        if dets[0].next_pool and t + 1 == dets[0].next_pool:
            for d, col in zip(dets, errors[fed: t + 1].T):
                d.update(col.astype(float))
            fed, (up, down, h) = t + 1, params()
    return alarms


def simulation_part(seeds: list[int], replicates: int) -> None:
    from mlauto.monitor.label_drift import MARGIN

    print("\n| p | margin | mean alarms / 10k | replicates alarming | "
          + " | ".join(f"P(stream of {n} seeds > 0.75)" for n in seeds) + " |")
    print("|---|---|---|---|" + "---|" * len(seeds))
    rng = np.random.default_rng(5)
    for p in (0.05, 0.15):
        for margin in (1.0, MARGIN):
            a = simulate(p, replicates, margin)
            tail = [np.mean([a[rng.choice(len(a), n, replace=False)].mean() > 0.75 for _ in range(4000)]) for n in seeds]
            print(f"| {p} | {margin:g} | {a.mean():.3f} | {np.mean(a > 0):.2f} | " + " | ".join(f"{x:.3f}" for x in tail)
                  + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--shared-flips", action="store_true", help="the old bench: one flip generator for all streams")
    ap.add_argument("--replicates", type=int, default=3000, help="simulated replicates per (p, margin)")
    ap.add_argument("--all", action="store_true", help="every concept pair of drift_delay.py (the controls' "
                    "false alarms at the defaults, as the issue's first target asks)")
    ap.add_argument("--kinds", nargs="*", default=None, help="concept pairs to diagnose (e.g. rbf:0:1 led:0:3)")
    ap.add_argument("--no-river", action="store_true")
    ap.add_argument("--no-simulation", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.time()
    if args.shared_flips:
        dd.stream_rng = lambda seed, gen, f0: np.random.default_rng(seed + 7)
    if not args.no_river:
        river_part([":".join(map(str, c)) for c in dd.CONCEPTS] if args.all else args.kinds or KINDS, args.seeds)
    if not args.no_simulation:
        simulation_part([10, 20], args.replicates)
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
