"""LightGBM vs XGBoost, one-hot vs native categoricals, on the development suite (issue 12, point 2).

For each suite dataset (bench/automl_suite.py's 80/20 split, seed 0): the 80% is split again 80/20 for
early stopping, both boosters are trained with their first hand-picked config (``Family.portfolio``)
and their YAML's fixed params, once on the default features (numerics imputed, categoricals one-hot)
and once on ``features=native`` (categoricals as ordinal codes, split as categories), and scored once on
the 20% test rows (accuracy, or R² for regression). No search, no Ray: the same config four ways, so
the difference is the booster and the encoding alone. Fit seconds are single-threaded (n_jobs=1).

    PYTHONPATH=$PWD python bench/boosters.py            # prints the table, writes bench/results/boosters/
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

from bench.automl_suite import SUITE, load, score
from mlauto.config.store import CONF_DIR
from mlauto.context import build_config
from mlauto.features import Preprocessor
from mlauto.models import FAMILIES as REGISTRY
from mlauto.models import build_estimator

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "boosters"
FAMILIES = ("lightgbm", "xgboost")
logger = logging.getLogger("bench.boosters")


def _features(native: bool) -> Preprocessor:
    conf = build_config(["features=native"] if native else [])
    steps = [dict(s) for s in conf.features.steps] if conf.features.steps else None
    return Preprocessor(conf.prepare.numeric_impute, conf.prepare.max_categories, steps)


def _params(family: str) -> dict[str, Any]:
    """The family's YAML ``fixed`` params and its first hand-picked config."""
    fixed = yaml.safe_load((CONF_DIR / "model" / f"{family}.yaml").read_text()).get("fixed", {})
    return {**fixed, **REGISTRY.get(family).portfolio[0]}


def run_dataset(name: str, seed: int) -> list[dict[str, Any]]:
    train, test, target, task = load(name, seed)
    inner, val = train_test_split(train, test_size=0.2, random_state=seed,
                                  stratify=train[target] if task == "classification" else None)
    features = [c for c in train.columns if c != target]
    kind = "binary" if task == "classification" and train[target].nunique() == 2 else (
        "multiclass" if task == "classification" else "regression")
    rows = []
    for native in (False, True):
        prep = _features(native)
        X = prep.fit_transform(inner[features], inner[target])
        Xv, Xt = prep.transform(val[features]), prep.transform(test[features])
        cats = list(prep.category_codes_)
        for family in FAMILIES:
            model = build_estimator(family, {**_params(family), "categorical_columns": cats}, seed, kind)
            start = time.perf_counter()
            model.fit(X, inner[target].to_numpy(), validation=(Xv, val[target].to_numpy()))
            seconds = time.perf_counter() - start
            rows.append({"dataset": name, "family": family, "features": "native" if native else "onehot",
                         "columns": int(X.shape[1]), "categorical": len(cats), "rounds": int(model.n_rounds_),
                         "fit_s": round(seconds, 2), "score": round(score(task, test[target], model.predict(Xt)), 4)})
            logger.info("%s %s %s: %s", name, family, rows[-1]["features"], rows[-1])
    return rows


def summarize(frame: pd.DataFrame) -> str:
    wide = frame.pivot_table(index="dataset", columns=["family", "features"], values=["score", "fit_s"])
    out = ["| dataset | categorical cols | one-hot cols | LightGBM one-hot | LightGBM native | XGBoost one-hot "
           "| XGBoost native | fit s (LGBM 1h / nat, XGB 1h / nat) |", "|---|---|---|---|---|---|---|---|"]
    for name in wide.index:
        s, t = wide.loc[name, "score"], wide.loc[name, "fit_s"]
        meta = frame[(frame.dataset == name) & (frame.features == "native")].iloc[0]
        onehot_cols = frame[(frame.dataset == name) & (frame.features == "onehot")].iloc[0]["columns"]
        out.append(f"| {name} | {meta['categorical']} | {onehot_cols} | {s['lightgbm', 'onehot']:.4f} | "
                   f"{s['lightgbm', 'native']:.4f} | {s['xgboost', 'onehot']:.4f} | {s['xgboost', 'native']:.4f} | "
                   f"{t['lightgbm', 'onehot']:.1f} / {t['lightgbm', 'native']:.1f}, "
                   f"{t['xgboost', 'onehot']:.1f} / {t['xgboost', 'native']:.1f} |")
    score = wide["score"]
    lines = ["", "Over the datasets (mean score; total fit seconds and its ratio to LightGBM one-hot, the baseline; "
                 "a tie is within 0.002):"]
    base_t = wide["fit_s"]["lightgbm", "onehot"].sum()
    for family in FAMILIES:
        for feats in ("onehot", "native"):
            diff = score[family, feats] - score["lightgbm", "onehot"]
            lines.append(f"- {family} {feats}: mean score {score[family, feats].mean():.4f} "
                         f"({diff.mean():+.4f} vs LightGBM one-hot; better on {(diff > 0.002).sum()}, "
                         f"worse on {(diff < -0.002).sum()} of {len(diff)}); "
                         f"total fit {wide['fit_s'][family, feats].sum():.1f} s "
                         f"= {wide['fit_s'][family, feats].sum() / base_t:.2f}x")
    return "\n".join(out + lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SUITE))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [row for name in args.datasets for row in run_dataset(name, args.seed)]
    frame = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"boosters-s{args.seed}.json").write_text(json.dumps(rows, indent=1))
    table = summarize(frame)
    (OUT / f"boosters-s{args.seed}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
