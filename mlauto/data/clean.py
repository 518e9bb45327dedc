"""Cleaning with quarantine: repair what a rule says to repair, set every other bad row aside with a reason.

Nothing is dropped silently: rows in = rows kept + rows quarantined, and the quarantine is a
Parquet file (values as text, exactly as read, plus ``reason`` and ``snapshot``) next to counts per
reason. Rules come from config (``prepare.clean``); without rules the defaults apply: a text column
whose values are >= ``numeric_threshold`` parseable numbers is numeric and its other values are
invalid, rows without a target are quarantined, exact duplicate rows are quarantined.

The work is split so it streams through Ray Data with bounded memory: :func:`clean_batch` is
stateless and runs in ``map_batches`` on the workers; the driver-side :class:`Collector` removes
duplicates across batches (a sorted array of 8-byte row hashes), writes kept and quarantined rows
incrementally and feeds the profile.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_integer_dtype, is_numeric_dtype

from mlauto import storage
from mlauto.config.schema import CleanConf, ColumnRule, section_from_dict
from mlauto.errors import DataError

logger = logging.getLogger(__name__)

KINDS = ("numeric", "categorical", "datetime", "boolean")
REASON, RAW, HASH, REPAIRED = "__reason", "__raw", "__hash", "__repaired"
MISSING_TARGET = "missing target"
DUPLICATE = "duplicate row"
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
# What pandas.read_csv reads as missing, so text read by Ray Data means the same.
NA_TOKENS = pa.array(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"], type=pa.string())


def column_rules(rules: CleanConf) -> dict[str, ColumnRule]:
    """``prepare.clean.columns`` as :class:`ColumnRule` objects. The schema keeps the mapping free so that
    ``+prepare.clean.columns.age.range=[0,120]`` works on the command line; ``mlauto.data.checks`` checks
    each rule's keys against :class:`ColumnRule` before any work starts."""
    return {str(name): rule if isinstance(rule, ColumnRule) else section_from_dict(ColumnRule, dict(rule or {}))
            for name, rule in rules.columns.items()}


def clean_rules(rules: dict[str, Any] | None = None) -> CleanConf:
    """The rules of ``prepare.clean`` from a plain dict (a test's or a benchmark's), typed by the schema."""
    return section_from_dict(CleanConf, rules)


@dataclass
class CleanPlan:
    """The resolved kind and rule of every column; picklable, shipped to the workers."""

    target: str
    kinds: dict[str, str]
    rules: CleanConf
    fingerprint: str = ""
    columns: dict[str, ColumnRule] = field(default_factory=dict)  # rules.columns, typed

    def rule(self, column: str) -> ColumnRule:
        return self.columns.get(column, ColumnRule())

    def on_invalid(self, column: str) -> str:
        return self.rule(column).on_invalid or self.rules.on_invalid


def plain(series: pd.Series) -> pd.Series:
    """NumPy-backed numbers, booleans and times: Arrow-backed columns (as Ray Data may hand them over)
    treat NaN as a value, not as missing. Text is left as is (see :func:`text_values`)."""
    dtype = series.dtype
    if not (isinstance(dtype, pd.ArrowDtype) or str(dtype) in ("Int64", "Int32", "Float64", "boolean")):
        return series
    if is_bool_dtype(dtype):
        return series.astype(object).where(series.notna(), None) if series.isna().any() else series.astype(bool)
    if is_integer_dtype(dtype) and not series.isna().any():
        return series.astype("int64")
    if is_numeric_dtype(dtype):
        return series.astype("float64")
    if is_datetime64_any_dtype(dtype):
        return pd.to_datetime(series.astype(object))
    return series


def is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return not (is_numeric_dtype(dtype) or is_bool_dtype(dtype) or is_datetime64_any_dtype(dtype))


def text_values(series: pd.Series) -> pa.Array:
    """A text column as Arrow strings, trimmed, with blanks and the tokens ``pandas.read_csv`` reads as
    missing ("NA", "null", "nan", ...) set to null. Arrow compute keeps this fast on wide batches."""
    try:
        arr = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: compare them as text
        arr = pa.array(series.map(str, na_action="ignore"), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.is_in(arr, value_set=NA_TOKENS), pa.scalar(None, pa.string()), arr)


def parse_numbers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (NaN where missing or unparseable) and a mask of the unparseable ones."""
    ok = pc.match_substring_regex(text, _NUMBER)
    values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    bad = pc.fill_null(pc.invert(ok), False)
    return values.to_numpy(zero_copy_only=False), bad.to_numpy(zero_copy_only=False)


def _to_object(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def infer_kind(series: pd.Series, threshold: float) -> str:
    """numeric / datetime / boolean / categorical, from the dtype or, for text, from how much parses."""
    series = plain(series)
    if is_bool_dtype(series):
        return "boolean"
    if is_numeric_dtype(series):
        return "numeric"
    if is_datetime64_any_dtype(series):
        return "datetime"
    text = text_values(series)
    present = len(text) - text.null_count
    if present == 0:
        return "categorical"
    _, bad = parse_numbers(text)
    if 1.0 - bad.sum() / present >= threshold:
        return "numeric"
    values = pd.Series(_to_object(text)).dropna()
    if values.str.match(_DATE_LIKE).mean() >= threshold:
        if pd.to_datetime(values, errors="coerce", format="ISO8601").notna().mean() >= threshold:
            return "datetime"
    return "categorical"


def _missing(series: pd.Series) -> np.ndarray:
    if is_text(series):
        return _to_object(pc.is_null(text_values(series)))
    return series.isna().to_numpy()


def make_plan(sample: pd.DataFrame, target: str, rules: CleanConf, fingerprint: str = "") -> CleanPlan:
    """Resolve column kinds on a sample (the first rows of a streamed dataset); configured types win."""
    if target not in sample.columns:
        raise DataError(
            f"target column {target!r} is not in the data; set data.target to one of: {', '.join(map(str, sample.columns))}"
        )
    for name in [*rules.columns, *rules.required]:
        if name not in sample.columns:
            raise DataError(f"prepare.clean names column {name!r}, which is not in the data "
                            f"(columns: {', '.join(map(str, sample.columns))}); fix the name or remove the rule")
    columns = column_rules(rules)
    kinds = {}
    for col in sample.columns:
        if col == target:
            continue
        rule = columns.get(str(col))
        if rule and rule.type:
            kinds[str(col)] = rule.type
        elif rule and rule.range is not None:
            kinds[str(col)] = "numeric"
        elif rule and rule.categories is not None:
            kinds[str(col)] = "categorical"
        else:
            kinds[str(col)] = infer_kind(sample[col], rules.numeric_threshold)
    return CleanPlan(target, kinds, rules, fingerprint, columns)


def _first_reason(reason: np.ndarray, bad: np.ndarray, label: str) -> None:
    reason[bad & pd.isna(reason)] = label


def clean_batch(batch: pd.DataFrame, plan: CleanPlan) -> pd.DataFrame:
    """Typed values plus ``__reason`` (first problem, null if clean), ``__raw`` (the row as read, as JSON,
    for bad rows only), ``__repaired`` (what was imputed) and ``__hash`` (for de-duplication)."""
    n = len(batch)
    reason = np.full(n, None, dtype=object)
    repaired = np.full(n, None, dtype=object)
    out: dict[str, Any] = {}
    target = plain(batch[plan.target])
    if is_text(target):
        target = pd.Series(_to_object(text_values(target)), index=batch.index, dtype=object)
    _first_reason(reason, target.isna().to_numpy(), MISSING_TARGET)
    for col in plan.rules.required:
        if col != plan.target:
            _first_reason(reason, _missing(batch[col]), f"missing {col}")
    for col, kind in plan.kinds.items():
        raw = plain(batch[col])
        rule = plan.rule(col)
        problems: list[tuple[np.ndarray, str]] = []
        values: Any
        if kind == "numeric":
            if is_integer_dtype(raw) and not is_bool_dtype(raw) and rule.range is None:
                values = raw.to_numpy()  # integers stay integers (nothing in them can be invalid)
            elif is_numeric_dtype(raw) and not is_bool_dtype(raw):
                values = raw.to_numpy(dtype="float64")
            else:
                values, unparseable = parse_numbers(text_values(raw))
                problems.append((unparseable, f"unparseable number in {col}"))
            if rule.range is not None:
                low, high = rule.range
                with np.errstate(invalid="ignore"):
                    outside = np.zeros(n, dtype=bool)
                    if low is not None:
                        outside |= values < low
                    if high is not None:
                        outside |= values > high
                problems.append((outside, f"out of range in {col}"))
        elif kind == "datetime":
            if is_datetime64_any_dtype(raw):
                values = raw.to_numpy()
            else:
                present = pd.Series(_to_object(text_values(raw)), index=batch.index, dtype=object)
                parsed = pd.to_datetime(present, errors="coerce", format="ISO8601")
                problems.append(((parsed.isna() & present.notna()).to_numpy(), f"unparseable time in {col}"))
                values = parsed.to_numpy()
        elif kind == "boolean":
            values = raw.to_numpy()
        else:
            text = text_values(raw)
            if rule.categories is not None:
                allowed = pa.array([str(c) for c in rule.categories], type=pa.string())
                outside = pc.and_(pc.is_valid(text), pc.invert(pc.is_in(text, value_set=allowed)))
                problems.append((_to_object(outside).astype(bool), f"out-of-domain category in {col}"))
            values = _to_object(text)
        for bad, label in problems:
            if not bad.any():
                continue
            if plan.on_invalid(col) == "impute":
                values = values.astype("float64") if kind == "numeric" else values.copy()
                values[bad] = (np.nan if kind == "numeric" else None) if rule.fill is None else rule.fill
                _first_reason(repaired, bad, label)
            else:
                _first_reason(reason, bad, label)
        out[col] = values
    out[plan.target] = target.to_numpy()
    frame = pd.DataFrame({c: out[c] for c in batch.columns})
    is_bad = pd.notna(reason)
    raw_json = np.full(n, None, dtype=object)
    if is_bad.any():
        rows = batch[is_bad].astype(object)
        raw_json[is_bad] = [json.dumps(r, default=str) for r in rows.where(rows.notna(), None).to_numpy().tolist()]
    frame[HASH] = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    frame[REASON] = reason
    frame[RAW] = raw_json
    frame[REPAIRED] = repaired
    return frame


@dataclass
class CleanResult:
    rows_in: int
    rows_kept: int
    rows_quarantined: int
    reasons: dict[str, int]
    repaired: dict[str, int]
    kinds: dict[str, str]
    quarantine_path: str | None
    kept_path: str | None = None
    frame: pd.DataFrame | None = None  # the kept rows, when cleaned in memory
    profile: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("frame")
        d.pop("profile")
        return d


class Collector:
    """Driver side of the cleaning: de-duplicates across batches and writes kept and quarantined rows.

    Memory: one batch plus 8 bytes per distinct kept row (the sorted row hashes).
    """

    def __init__(self, plan: CleanPlan, quarantine_path: str, kept_path: str | None = None,
                 profiler: Callable[[CleanPlan], Any] | None = None) -> None:
        self.plan = plan
        self.quarantine_path = quarantine_path
        self.kept_path = kept_path
        self.profiler = profiler(plan) if profiler is not None else None
        self.seen = np.empty(0, dtype=np.uint64)
        self.rows_in = self.rows_kept = self.rows_quarantined = 0
        self.reasons: dict[str, int] = {}
        self.repaired: dict[str, int] = {}
        self.kept: list[pd.DataFrame] = []
        self._qwriter: pq.ParquetWriter | None = None
        self._kwriter: pq.ParquetWriter | None = None
        self._kschema: pa.Schema | None = None

    def _dedupe(self, hashes: np.ndarray) -> np.ndarray:
        """True where a row repeats one seen earlier (in this batch or an earlier one)."""
        dup = pd.Series(hashes).duplicated().to_numpy()
        if len(self.seen):
            pos = np.searchsorted(self.seen, hashes)
            found = self.seen[np.minimum(pos, len(self.seen) - 1)] == hashes
            dup |= found
        new = np.unique(hashes[~dup])
        if len(new):
            self.seen = np.insert(self.seen, np.searchsorted(self.seen, new), new)
        return dup

    def add(self, cleaned: pd.DataFrame) -> None:
        columns = [c for c in cleaned.columns if c not in (REASON, RAW, HASH, REPAIRED)]
        self.rows_in += len(cleaned)
        reason = cleaned[REASON].to_numpy(dtype=object)
        ok = pd.isna(reason)
        if self.plan.rules.dedupe and ok.any():
            dup = np.zeros(len(cleaned), dtype=bool)
            dup[ok] = self._dedupe(cleaned[HASH].to_numpy()[ok])
            reason = reason.copy()
            reason[dup] = DUPLICATE
            ok &= ~dup
        for label, count in pd.Series(reason[~ok]).value_counts().items():
            self.reasons[label] = self.reasons.get(label, 0) + int(count)
        for label, count in cleaned.loc[ok, REPAIRED].dropna().value_counts().items():
            self.repaired[label] = self.repaired.get(label, 0) + int(count)
        if (~ok).any():
            self._quarantine(cleaned.loc[~ok], reason[~ok], columns)
        kept = cleaned.loc[ok, columns]
        self.rows_kept += len(kept)
        if self.profiler is not None and len(kept):
            self.profiler.update(kept, cleaned.loc[ok, HASH].to_numpy())
        if self.kept_path is None:
            self.kept.append(kept)
        elif len(kept):
            table = pa.Table.from_pandas(kept, preserve_index=False)
            if self._kwriter is None:
                self._kschema = _stable_schema(table.schema, self.plan)
                self._kwriter = storage.parquet_writer(self.kept_path, self._kschema)
            self._kwriter.write_table(table.cast(self._kschema))

    def _quarantine(self, bad: pd.DataFrame, reason: np.ndarray, columns: list[str]) -> None:
        raw = bad[RAW].to_numpy(dtype=object)
        rows = []
        values = bad[columns].astype(object).where(bad[columns].notna(), None).to_numpy().tolist()
        for i, row in enumerate(values):  # the raw row where the cleaner kept it (bad rows), else the value
            cells = json.loads(raw[i]) if isinstance(raw[i], str) else row
            rows.append([None if c is None else str(c) for c in cells])
        frame = pd.DataFrame(rows, columns=columns, dtype=object)
        frame["reason"] = reason
        frame["snapshot"] = self.plan.fingerprint
        schema = pa.schema([(c, pa.string()) for c in frame.columns])
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        if self._qwriter is None:
            self._qwriter = storage.parquet_writer(storage.temp_path(self.quarantine_path), schema)
        self._qwriter.write_table(table)
        self.rows_quarantined += len(frame)

    def finish(self) -> CleanResult:
        for writer in (self._qwriter, self._kwriter):
            if writer is not None:
                writer.close()
        qpath = None
        if self._qwriter is not None:
            if storage.temp_path(self.quarantine_path) != self.quarantine_path:
                storage.replace(storage.temp_path(self.quarantine_path), self.quarantine_path)
            qpath = self.quarantine_path
            logger.warning("quarantined %d of %d row(s) -> %s: %s", self.rows_quarantined, self.rows_in, qpath,
                           ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items())))
        if self.repaired:
            logger.info("repaired (set to missing, imputed later): %s",
                        ", ".join(f"{k}: {v}" for k, v in sorted(self.repaired.items())))
        if self.rows_in != self.rows_kept + self.rows_quarantined:  # never expected: it would mean lost rows
            raise RuntimeError(f"cleaning lost rows: {self.rows_in} in, {self.rows_kept} kept, "
                               f"{self.rows_quarantined} quarantined")
        frame = None
        if self.kept_path is None:
            frame = pd.concat(self.kept, ignore_index=True) if self.kept else pd.DataFrame()
        result = CleanResult(self.rows_in, self.rows_kept, self.rows_quarantined, dict(self.reasons),
                             dict(self.repaired), dict(self.plan.kinds), qpath,
                             self.kept_path if self._kwriter is not None else None, frame,
                             self.profiler.result() if self.profiler is not None else None)
        check_result(result, self.plan)
        return result


def _stable_schema(schema: pa.Schema, plan: CleanPlan) -> pa.Schema:
    """Kept-row schema that every batch casts to: numbers float64, categories text, nulls typed."""
    fields = []
    for f in schema:
        kind = plan.kinds.get(f.name)
        if kind == "numeric":
            whole = pa.types.is_integer(f.type) and plan.rule(f.name).range is None
            fields.append(pa.field(f.name, pa.int64() if whole else pa.float64()))
        elif kind == "categorical" or (pa.types.is_null(f.type)):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    return pa.schema(fields)


def check_result(result: CleanResult, plan: CleanPlan) -> None:
    """Refuse a result that leaves nothing to learn from, saying what to fix."""
    if result.rows_in == 0:
        raise DataError("the data has no rows; point data.path at a file with a header and rows")
    if result.rows_kept:
        return
    if result.reasons.get(MISSING_TARGET) == result.rows_in:
        raise DataError(f"every row lacks the target {plan.target!r}; check data.target and the file")
    top = ", ".join(f"{k}: {v}" for k, v in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:5])
    raise DataError(f"every row was quarantined ({top}); see {result.quarantine_path}. Fix the data, or relax "
                    "prepare.clean (per-column range/categories, on_invalid: impute)")


def quarantine_file(quarantine_dir: str, fingerprint: str) -> str:
    return storage.join(storage.normalize(quarantine_dir), f"{fingerprint}.parquet")


def clean_frame(frame: pd.DataFrame, target: str, rules: CleanConf, *, fingerprint: str, quarantine_dir: str,
                profiler: Callable[[CleanPlan], Any] | None = None) -> CleanResult:
    """Clean an in-memory frame (small data, tests); same rules and code as the streamed path."""
    plan = make_plan(frame, target, rules, fingerprint)
    collector = Collector(plan, quarantine_file(quarantine_dir, fingerprint), profiler=profiler)
    if len(frame):
        collector.add(clean_batch(frame, plan))
    return collector.finish()


@dataclass(frozen=True)
class CleanOutput:
    """Where one cleaning pass writes: quarantined rows under ``quarantine_dir`` and the kept rows to
    ``kept_path``, both named by the data's ``fingerprint``."""

    fingerprint: str
    quarantine_dir: str
    kept_path: str


def clean_dataset(dataset: Any, target: str, rules: CleanConf, out: CleanOutput, *,
                  profiler: Callable[[CleanPlan], Any] | None = None, batch_size: int = 65536,
                  sample_rows: int = 20000, progress: bool = True) -> CleanResult:
    """Stream a Ray Dataset through :func:`clean_batch` (on the workers) and the :class:`Collector`.

    ``profiler(plan)`` builds the profile accumulator fed with the kept rows (see :mod:`mlauto.data.profile`).

    Column kinds are inferred on the first ``sample_rows`` rows. Memory stays bounded: batches flow
    through Ray's streaming executor and are written as they arrive, never gathered.
    """
    from tqdm import tqdm

    sample = dataset.limit(sample_rows).to_pandas()
    if sample.empty:
        raise DataError("the data has no rows; point data.path at a file with a header and rows")
    plan = make_plan(sample, target, rules, out.fingerprint)
    kept_path = storage.normalize(out.kept_path)
    staging = storage.temp_path(kept_path)
    collector = Collector(plan, quarantine_file(out.quarantine_dir, out.fingerprint), staging, profiler)
    cleaned = dataset.map_batches(clean_batch, fn_kwargs={"plan": plan}, batch_format="pandas",
                                  batch_size=batch_size)
    with tqdm(desc="clean", unit="rows", disable=None if progress else True, mininterval=2.0) as bar:
        for batch in cleaned.iter_batches(batch_format="pandas", batch_size=None, prefetch_batches=1):
            collector.add(batch)
            bar.update(len(batch))
    result = collector.finish()
    if result.kept_path:
        if staging != kept_path:
            storage.replace(staging, kept_path)
        result.kept_path = kept_path
    return result


__all__ = ["CleanConf", "CleanOutput", "CleanPlan", "CleanResult", "Collector", "ColumnRule", "clean_batch", "clean_dataset",
           "clean_frame", "infer_kind", "make_plan", "quarantine_file"]
