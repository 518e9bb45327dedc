"""Learn the search's first configs (``tune.portfolio``) offline from the development suite (issue 12).

For each dataset of ``bench/automl_suite.py`` (its seed-0 80% training part only: the suite's test rows
are never read), mlauto's preprocessing is fitted on an inner 75% and every candidate config is scored
on the other 25% with the trials' own scoring (``score_config``: early stopping for boosting). The
candidates: each family's hand-picked configs plus seeded random draws from its configured space,
clipped to each dataset's planned space as a search would clip them.

Per dataset, a candidate's regret is ``(best - score) / (best - median)`` clipped to [0, 1] (0: the best
candidate there, 1: no better than the median one). The portfolio is built greedily: each step adds
the candidate that most lowers the mean over datasets of the portfolio's lowest regret (Auto-sklearn
2.0's portfolio construction; FLAML's zero-shot configs are learned in the same spirit). It is then
ordered cheapest first (mean fit seconds), so a short budget gets its cheap sound models first.

Writes ``mlauto/tune/portfolio.json`` (learned on all datasets: what mlauto ships), and for each dataset
``bench/results/portfolio/loo-<dataset>.json`` (learned without it: what the suite judges that dataset
with, so the suite does not grade its own homework) and ``scores.csv`` (the whole matrix). It prints,
per dataset, the best score of the hand-picked configs, of the portfolio learned without the dataset,
and of all candidates.

    PYTHONPATH=$PWD nice python bench/learn_portfolio.py            # about 20-30 min on 2 cores
    PYTHONPATH=$PWD python bench/learn_portfolio.py --from-scores   # only the selection, from scores.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import automl_suite as suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "portfolio"
PACKAGED = ROOT / "mlauto" / "tune" / "portfolio.json"
# family -> random draws beside its hand-picked configs (the families a portfolio draws from; the MLP,
# SVM and k-NN are slow or weak on these tables and stay to the search)
DRAWS = {"lightgbm": 14, "hist_gb": 5, "extra_trees": 4, "random_forest": 5, "logreg": 3}
SIZE = 8  # configs in the portfolio (tune.portfolio's default)

logger = logging.getLogger("learn_portfolio")


def _draw(spec: dict[str, Any], rng: np.random.Generator) -> Any:
    kind = spec["type"]
    if kind == "choice":
        return spec["values"][int(rng.integers(len(spec["values"])))]
    low, high = float(spec["low"]), float(spec["high"])
    if kind in ("loguniform", "logint"):
        value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    else:
        value = float(rng.uniform(low, high))
    return int(round(value)) if kind in ("int", "logint") else round(value, 6)


def candidates(seed: int = 0) -> list[dict[str, Any]]:
    """Each family's hand-picked configs, then its seeded draws: ``{"id", "family", "params", "hand"}``."""
    import mlauto
    from mlauto.models import FAMILIES

    spaces = {name: dict(f.space) for name, f in mlauto.compose(["models=all"]).families.items()}
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for family, draws in DRAWS.items():
        configs = [(dict(c), True) for c in FAMILIES.get(family).portfolio]
        configs += [({k: _draw(s, rng) for k, s in spaces[family].items()}, False) for _ in range(draws)]
        out += [{"id": f"{family}-{i}", "family": family, "params": p, "hand": hand}
                for i, (p, hand) in enumerate(configs)]
    return out


def score_dataset(name: str, pool: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every candidate on one dataset's inner holdout (a worker process)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelEncoder

    import mlauto
    from mlauto.features.preprocess import Preprocessor
    from mlauto.models import plan_families
    from mlauto.tasks import detect_task
    from mlauto.tune.search import score_config

    train, _test, target, kind = suite.load(name, 0)  # the suite's test part is never used
    inner, val = train_test_split(train, test_size=0.25, random_state=0,
                                  stratify=train[target] if kind == "classification" else None)
    y_tr, y_va = inner[target].to_numpy(), val[target].to_numpy()
    if kind == "classification":
        enc = LabelEncoder().fit(train[target])
        y_tr, y_va = enc.transform(y_tr), enc.transform(y_va)
    cfg = mlauto.compose(["models=all"])
    p = cfg.prepare
    prep = Preprocessor(p.numeric_impute, p.max_categories, cfg.features.steps, cfg.features.selection)
    features = [c for c in train.columns if c != target]
    X_tr = prep.fit_transform(inner[features], y_tr)
    X_va = prep.transform(val[features])
    task = detect_task(y_tr) if kind == "classification" else "regression"
    metric = "accuracy" if kind == "classification" else "r2"
    data = (X_tr, y_tr, X_va, y_va)  # one holdout: 5-fold CV (as a search on these rows) was 5x the hours
    planned = plan_families({f: {"space": dict(cfg.families[f].space), "fixed": dict(cfg.families[f].fixed)}
                             for f in DRAWS}, task, n_rows=len(y_tr), n_features=int(X_tr.shape[1]))
    rows = []
    for cand in pool:
        fam = planned.get(cand["family"])
        row = {"dataset": name, "id": cand["id"], "family": cand["family"], "hand": cand["hand"],
               "params": json.dumps(cand["params"], sort_keys=True), "score": np.nan, "seconds": np.nan}
        if fam is not None:
            params = {**fam.get("fixed", {}), **fam["family"].clip(fam["space"], cand["params"])}
            start = time.perf_counter()
            try:
                report = score_config(fam["family"], params, data, 0, metric, task)
                row["score"] = float(report["score"])
            except Exception as exc:  # noqa: BLE001 - a failing config scores nothing there
                logger.warning("%s %s failed: %r", name, cand["id"], exc)
            row["seconds"] = round(time.perf_counter() - start, 3)
        rows.append(row)
    logger.info("%s: %d candidates scored (%d rows x %d features)", name, len(pool), len(y_tr), X_tr.shape[1])
    return rows


def regrets(scores: pd.DataFrame) -> pd.DataFrame:
    """dataset x candidate regret in [0, 1] (every suite metric is higher-is-better); NaN score: 1."""
    table = scores.pivot(index="dataset", columns="id", values="score")
    best, median = table.max(axis=1), table.median(axis=1)
    spread = (best - median).clip(lower=1e-9)
    return ((table.rsub(best, axis=0)).div(spread, axis=0)).clip(0, 1).fillna(1.0)


def greedy(regret: pd.DataFrame, seconds: pd.Series, size: int = SIZE) -> list[str]:
    """Candidate ids, cheapest first, whose lowest regret per dataset has the lowest mean."""
    chosen: list[str] = []
    current = pd.Series(1.0, index=regret.index)
    for _ in range(min(size, regret.shape[1])):
        gain = {c: float(np.minimum(current, regret[c]).mean()) for c in regret.columns if c not in chosen}
        pick = min(gain, key=lambda c: (round(gain[c], 9), seconds[c]))
        chosen.append(pick)
        current = np.minimum(current, regret[pick])
    return sorted(chosen, key=lambda c: seconds[c])


def portfolio_file(ids: list[str], pool: dict[str, dict[str, Any]], learned_on: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "about": "Learned offline by bench/learn_portfolio.py: greedy over candidate configs scored on the "
                 "development suite's training rows (bench/automl_suite.py); cheapest first.",
        "learned_on": learned_on,
        "configs": [{"family": pool[i]["family"], "params": pool[i]["params"]} for i in ids],
    }, indent=1) + "\n")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-scores", action="store_true", help="reuse scores.csv: only the selection")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pool = candidates()
    by_id = {c["id"]: c for c in pool}
    OUT.mkdir(parents=True, exist_ok=True)
    if args.from_scores:
        scores = pd.read_csv(OUT / "scores.csv")
    else:
        with ProcessPoolExecutor(args.workers) as ex:
            parts = list(ex.map(score_dataset, list(suite.SUITE), [pool] * len(suite.SUITE)))
        scores = pd.DataFrame([r for part in parts for r in part])
        scores.to_csv(OUT / "scores.csv", index=False)
    regret = regrets(scores)
    seconds = scores.groupby("id")["seconds"].mean().fillna(np.inf)
    datasets = list(regret.index)
    portfolio_file(greedy(regret, seconds), by_id, datasets, PACKAGED)
    table = scores.pivot(index="dataset", columns="id", values="score")
    hand = [c["id"] for c in pool if c["hand"]]
    lines = ["| dataset | best candidate | hand-picked best | learned without it, best | its regret: hand / learned |",
             "|---|---|---|---|---|"]
    for d in datasets:
        ids = greedy(regret.drop(index=d), seconds)
        portfolio_file(ids, by_id, [x for x in datasets if x != d], OUT / f"loo-{d}.json")
        lines.append(f"| {d} | {table.loc[d].max():.4f} | {table.loc[d, hand].max():.4f} | "
                     f"{table.loc[d, ids].max():.4f} | {regret.loc[d, hand].min():.3f} / "
                     f"{regret.loc[d, ids].min():.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
