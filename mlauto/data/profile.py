"""Data profile and schema check, from mergeable per-batch aggregates (so they stream through Ray Data).

Exact: row and column counts, missing %, min/max/mean/std, category counts up to ``max_categories``
distinct values per column, target balance, rows outside the reference schema. Approximate (said so
in the profile): quantiles and the association with the target, computed on a uniform sample of
``sample_size`` rows (bottom-k by row hash, which merges exactly), and distinct counts above
``kmv_size`` (k-minimum-values sketch).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from mlauto import storage
from mlauto.errors import DataError

logger = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_MAX64 = float(2**64)


def _kmv_merge(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    return np.unique(np.concatenate([a, b]))[:k]


def _kmv_estimate(kmv: np.ndarray, k: int) -> tuple[int, bool]:
    if len(kmv) < k:
        return len(kmv), False
    return int(round((k - 1) / (float(kmv[-1]) / _MAX64))), True


def correlation_ratio(values: np.ndarray, classes: np.ndarray) -> float:
    """eta in [0, 1]: how much of a numeric column's variance the target classes explain."""
    ok = ~np.isnan(values)
    values, classes = values[ok], classes[ok]
    if len(values) < 2 or values.var() == 0:
        return 0.0
    frame = pd.DataFrame({"v": values, "c": classes})
    groups = frame.groupby("c")["v"].agg(["mean", "count"])
    between = float((groups["count"] * (groups["mean"] - values.mean()) ** 2).sum())
    return float(math.sqrt(between / (values.var() * len(values))))


def cramers_v(values: pd.Series, classes: pd.Series) -> float:
    """Cramér's V in [0, 1] between a categorical column (missing as a category) and the target."""
    from scipy.stats.contingency import association

    table = pd.crosstab(values.fillna("__missing__"), classes)
    if min(table.shape) < 2:
        return 0.0
    return float(association(table.to_numpy(), method="cramer"))


class ProfileAccumulator:
    """Per-column aggregates; ``update`` with a batch, ``merge`` two partial profiles, ``result`` at the end.

    ``reference`` (a saved schema) makes it count the rows outside the training range and the rows
    with categories never seen in training, for :func:`check_schema`.
    """

    def __init__(self, kinds: dict[str, str], target: str, *, sample_size: int = 10000,
                 max_categories: int = 1000, kmv_size: int = 2048, reference: dict[str, Any] | None = None) -> None:
        self.kinds = dict(kinds)
        self.target = target
        self.sample_size = sample_size
        self.max_categories = max_categories
        self.kmv_size = kmv_size
        self.reference = reference
        self.rows = 0
        self.stats: dict[str, dict[str, Any]] = {}
        self.target_counts: dict[str, int] = {}
        self.sample: pd.DataFrame | None = None
        self.sample_keys = np.empty(0, dtype=np.uint64)
        self.drift: dict[str, dict[str, Any]] = {}

    def _col(self, col: str) -> dict[str, Any]:
        if col not in self.stats:
            self.stats[col] = {"count": 0, "missing": 0, "sum": 0.0, "sumsq": 0.0, "min": None, "max": None,
                               "counts": {}, "truncated": False, "kmv": np.empty(0, dtype=np.uint64)}
        return self.stats[col]

    def update(self, batch: pd.DataFrame, keys: np.ndarray | None = None) -> "ProfileAccumulator":
        """Add a batch of rows; ``keys`` are their row hashes when the caller has them already."""
        if batch.empty:
            return self
        self.rows += len(batch)
        for label, count in batch[self.target].astype(str).value_counts().items():
            self.target_counts[label] = self.target_counts.get(label, 0) + int(count)
        for col, kind in self.kinds.items():
            series = batch[col]
            s = self._col(col)
            missing = int(series.isna().sum())
            s["missing"] += missing
            s["count"] += len(series) - missing
            present = series.dropna()
            s["kmv"] = _kmv_merge(s["kmv"], np.unique(pd.util.hash_array(present.to_numpy()))[: self.kmv_size],
                                  self.kmv_size)
            if kind == "numeric" and len(present):
                values = present.to_numpy(dtype="float64")
                s["sum"] += float(values.sum())
                s["sumsq"] += float((values**2).sum())
                lo, hi = float(values.min()), float(values.max())
                s["min"] = lo if s["min"] is None else min(s["min"], lo)
                s["max"] = hi if s["max"] is None else max(s["max"], hi)
            elif kind == "datetime" and len(present):
                lo, hi = str(present.min()), str(present.max())
                s["min"] = lo if s["min"] is None else min(s["min"], lo)
                s["max"] = hi if s["max"] is None else max(s["max"], hi)
            elif kind in ("categorical", "boolean"):
                self._add_counts(s, present.astype(str).value_counts())
        self._update_drift(batch)
        if keys is None:
            keys = pd.util.hash_pandas_object(batch, index=False).to_numpy()
        self._merge_sample(batch.reset_index(drop=True), keys)
        return self

    def _add_counts(self, s: dict[str, Any], counts: Any) -> None:
        merged = s["counts"]
        for label, count in counts.items():
            merged[label] = merged.get(label, 0) + int(count)
        if len(merged) > self.max_categories:
            s["truncated"] = True
            s["counts"] = dict(sorted(merged.items(), key=lambda kv: -kv[1])[: self.max_categories])

    def _merge_sample(self, frame: pd.DataFrame, keys: np.ndarray) -> None:
        if self.sample is not None:
            frame = pd.concat([self.sample, frame], ignore_index=True)
            keys = np.concatenate([self.sample_keys, keys])
        if len(keys) > self.sample_size:
            idx = np.argpartition(keys, self.sample_size)[: self.sample_size]
            idx.sort()
            frame, keys = frame.iloc[idx].reset_index(drop=True), keys[idx]
        self.sample, self.sample_keys = frame, keys

    def _update_drift(self, batch: pd.DataFrame) -> None:
        if not self.reference:
            return
        for col, ref in self.reference.get("columns", {}).items():
            if col not in batch.columns or ref.get("type") != self.kinds.get(col):
                continue
            d = self.drift.setdefault(col, {"outside": 0, "unseen": {}})
            series = batch[col].dropna()
            if ref["type"] == "numeric" and ref.get("min") is not None:
                d["outside"] += int(((series < ref["min"]) | (series > ref["max"])).sum())
            elif ref.get("categories") is not None:
                unseen = series.astype(str)
                unseen = unseen[~unseen.isin(set(ref["categories"]))]
                for label, count in unseen.value_counts().head(20).items():
                    d["unseen"][label] = d["unseen"].get(label, 0) + int(count)

    def merge(self, other: "ProfileAccumulator") -> "ProfileAccumulator":
        """Fold ``other`` (a profile of other rows) into this one; the result equals one pass over both."""
        self.rows += other.rows
        for label, count in other.target_counts.items():
            self.target_counts[label] = self.target_counts.get(label, 0) + count
        for col, o in other.stats.items():
            s = self._col(col)
            for key in ("count", "missing", "sum", "sumsq"):
                s[key] += o[key]
            for key, pick in (("min", min), ("max", max)):
                if o[key] is not None:
                    s[key] = o[key] if s[key] is None else pick(s[key], o[key])
            s["truncated"] |= o["truncated"]
            self._add_counts(s, o["counts"])
            s["kmv"] = _kmv_merge(s["kmv"], o["kmv"], self.kmv_size)
        for col, o in other.drift.items():
            d = self.drift.setdefault(col, {"outside": 0, "unseen": {}})
            d["outside"] += o["outside"]
            for label, count in o["unseen"].items():
                d["unseen"][label] = d["unseen"].get(label, 0) + count
        if other.sample is not None:
            self._merge_sample(other.sample, other.sample_keys)
        return self

    def result(self) -> dict[str, Any]:
        sample = self.sample if self.sample is not None else pd.DataFrame()
        approx = self.rows > len(sample)
        columns: dict[str, Any] = {}
        for col, kind in self.kinds.items():
            s = self._col(col)
            n = s["count"] + s["missing"]
            distinct, distinct_approx = _kmv_estimate(s["kmv"], self.kmv_size)
            entry: dict[str, Any] = {"type": kind, "missing_pct": round(100.0 * s["missing"] / n, 3) if n else 0.0,
                                     "distinct": distinct, "distinct_approximate": distinct_approx}
            if kind == "numeric" and s["count"]:
                mean = s["sum"] / s["count"]
                entry.update(min=s["min"], max=s["max"], mean=mean,
                             std=math.sqrt(max(s["sumsq"] / s["count"] - mean**2, 0.0)))
                values = pd.to_numeric(sample[col], errors="coerce").dropna() if len(sample) else pd.Series([])
                if len(values):
                    entry["quantiles"] = {str(q): float(values.quantile(q)) for q in QUANTILES}
                    entry["quantiles_approximate"] = approx
            elif kind == "datetime":
                entry.update(min=s["min"], max=s["max"])
            elif kind in ("categorical", "boolean"):
                top = sorted(s["counts"].items(), key=lambda kv: -kv[1])
                entry["top"] = dict(top[:10])
                entry["categories_complete"] = not s["truncated"]
                if not s["truncated"]:
                    entry["categories"] = sorted(s["counts"])
            entry["target_association"] = self._association(sample, col, kind)
            columns[col] = entry
        total = sum(self.target_counts.values())
        return {
            "rows": self.rows, "columns": len(self.kinds) + 1, "target": self.target,
            "target_balance": {k: round(v / total, 6) for k, v in sorted(self.target_counts.items())} if total else {},
            "target_counts": dict(sorted(self.target_counts.items())),
            "sample_rows": len(sample), "approximate": "quantiles and target_association use a uniform sample of "
            f"{len(sample)} rows" if approx else "exact",
            "features": columns,
            **({"drift": self.drift} if self.reference else {}),
        }

    def _association(self, sample: pd.DataFrame, col: str, kind: str) -> dict[str, Any] | None:
        if sample.empty or sample[self.target].nunique() < 2:
            return None
        classes = sample[self.target].astype(str)
        if kind == "numeric":
            values = pd.to_numeric(sample[col], errors="coerce").to_numpy(dtype="float64")
            return {"method": "correlation_ratio", "value": round(correlation_ratio(values, classes.to_numpy()), 6)}
        if kind in ("categorical", "boolean"):
            return {"method": "cramers_v", "value": round(cramers_v(sample[col].astype(object), classes), 6)}
        return None


def schema_from_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """What later snapshots are checked against: columns, types, training ranges and categories."""
    columns = {}
    for col, entry in profile["features"].items():
        ref: dict[str, Any] = {"type": entry["type"]}
        if entry["type"] == "numeric":
            ref.update(min=entry.get("min"), max=entry.get("max"))
        elif entry.get("categories") is not None:
            ref["categories"] = entry["categories"]
        columns[col] = ref
    return {"target": profile["target"], "columns": columns}


def check_schema(reference: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Differences between a snapshot's profile (built with ``reference``) and the saved schema."""
    ref_cols, new_cols = reference["columns"], profile["features"]
    report: dict[str, Any] = {
        "new_columns": sorted(set(new_cols) - set(ref_cols)),
        "missing_columns": sorted(set(ref_cols) - set(new_cols)),
        "type_changes": {c: {"was": ref_cols[c]["type"], "now": new_cols[c]["type"]}
                         for c in sorted(set(ref_cols) & set(new_cols)) if ref_cols[c]["type"] != new_cols[c]["type"]},
        "unseen_categories": {}, "out_of_range": {},
    }
    for col, d in profile.get("drift", {}).items():
        if d["unseen"]:
            report["unseen_categories"][col] = {"rows": sum(d["unseen"].values()),
                                                "examples": sorted(d["unseen"], key=lambda k: -d["unseen"][k])[:5]}
        if d["outside"]:
            ref, now = ref_cols[col], new_cols[col]
            report["out_of_range"][col] = {"rows": d["outside"], "train_range": [ref["min"], ref["max"]],
                                           "range": [now.get("min"), now.get("max")]}
    report["ok"] = not any(report[k] for k in ("new_columns", "missing_columns", "type_changes",
                                                "unseen_categories", "out_of_range"))
    return report


def describe_report(report: dict[str, Any]) -> str:
    parts = []
    for key in ("new_columns", "missing_columns"):
        if report[key]:
            parts.append(f"{key.replace('_', ' ')}: {', '.join(report[key])}")
    for col, c in report["type_changes"].items():
        parts.append(f"{col} type {c['was']} -> {c['now']}")
    for col, u in report["unseen_categories"].items():
        parts.append(f"{col}: {u['rows']} row(s) with unseen categories {u['examples']}")
    for col, r in report["out_of_range"].items():
        parts.append(f"{col}: {r['rows']} row(s) outside the training range {r['train_range']}")
    return "; ".join(parts) or "matches the saved schema"


def enforce_schema(report: dict[str, Any], mode: str, schema_path: str) -> None:
    """``fail``: raise DataError; ``warn``: log it. The report itself goes into the summary either way."""
    if report["ok"] or mode == "off":
        return
    text = describe_report(report)
    if mode == "fail":
        raise DataError(f"the data does not match the saved schema {schema_path}: {text}. Fix the data, or delete "
                        "the schema file to accept the new shape, or set prepare.schema_check=warn")
    logger.warning("schema check against %s: %s", schema_path, text)


def profile_table(profile: dict[str, Any], max_rows: int = 30) -> str:
    """A short fixed-width table for the log."""
    lines = [f"{profile['rows']} rows x {profile['columns']} columns; target {profile['target']!r} balance "
             + ", ".join(f"{k}: {v:.1%}" for k, v in profile["target_balance"].items()),
             f"{'column':<24} {'type':<11} {'missing%':>8} {'distinct':>9}  {'summary':<40} {'assoc':>6}"]
    for col, e in list(profile["features"].items())[:max_rows]:
        if e["type"] == "numeric" and "mean" in e:
            summary = f"min {e['min']:.4g} mean {e['mean']:.4g} max {e['max']:.4g}"
        elif "top" in e:
            summary = "top " + ", ".join(f"{k}({v})" for k, v in list(e["top"].items())[:3])
        else:
            summary = f"{e.get('min')} .. {e.get('max')}"
        assoc = e.get("target_association")
        lines.append(f"{col[:24]:<24} {e['type']:<11} {e['missing_pct']:>8.2f} "
                     f"{('~' if e['distinct_approximate'] else '') + str(e['distinct']):>9}  {summary[:40]:<40} "
                     f"{'' if assoc is None else format(assoc['value'], '.3f'):>6}")
    if len(profile["features"]) > max_rows:
        lines.append(f"... {len(profile['features']) - max_rows} more column(s) in profile.json")
    return "\n".join(lines)


def save_json(data: dict[str, Any], path: str) -> str:
    return storage.write_json(path, data)  # atomic; any filesystem


def load_json(path: str) -> dict[str, Any] | None:
    return storage.read_json(path)


__all__ = ["ProfileAccumulator", "check_schema", "correlation_ratio", "cramers_v",
           "describe_report", "enforce_schema", "load_json", "profile_table", "save_json", "schema_from_profile"]
