"""Batch scoring: a CSV/Parquet file or folder through Ray Data, with serving's validation and scoring.

Each row gets exactly what ``POST /predict`` would give it: the same request validator built from the
training schema, the same :func:`~mlauto.serve.predict.score_many` (fitted preprocessing, then the
model). Rows serving would refuse are set aside in a quarantine Parquet file with a ``reason``, never
dropped silently: rows in = rows scored + rows quarantined.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd

from mlauto import storage
from mlauto.config.schema import PredictConf, PredictFormat
from mlauto.data.sources import matching_files
from mlauto.errors import DataError
from mlauto.serve.predict import score_many
from mlauto.serve.validation import InvalidRequest, RequestValidator

logger = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
PREDICTION, MODEL_NAME, MODEL_VERSION, PROBA = "prediction", "model_name", "model_version", "proba_"
REASON, RAW = "__reason", "__raw"  # internal columns between the workers and the writer
NON_FINITE = "the model cannot score this record (non-finite output); check it for extreme values"


@dataclass
class BatchResult:
    """What a batch scoring run did; ``rows_in == rows_scored + rows_quarantined``."""

    input: str
    output: str
    format: str
    model_name: str
    model_version: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- inputs and outputs ---------------------------------------------------------------------------


def input_files(path: str) -> tuple[list[str], str]:
    """The files behind ``path`` (a file, a folder or a glob) and their format (csv or parquet)."""
    if "://" in path:  # a remote URI: Ray Data lists it; the suffix says the format
        kind = SUFFIXES.get(os.path.splitext(path.rstrip("/"))[1].lower())
        if kind is None:
            raise DataError(f"predict.input {path!r}: cannot tell csv from parquet; end it in .csv or .parquet")
        return [path], kind
    files = matching_files(path, SUFFIXES, "predict.input", "a CSV or Parquet", ".csv or .parquet")
    kinds = {SUFFIXES.get(os.path.splitext(f)[1].lower()) for f in files}
    if len(kinds) != 1 or None in kinds:
        raise DataError(f"predict.input {path!r} mixes or holds unknown formats ({sorted(map(str, kinds))}); "
                        "point it at .csv files or at .parquet files")
    empty = [f for f in files if storage.size(f) == 0]
    if empty:
        raise DataError(f"{empty[0]} is empty (0 bytes); remove it or point predict.input at a file with rows")
    return files, kinds.pop()


def output_paths(input_path: str, output: str | None, fmt: str | None) -> tuple[str, str, str]:
    """(output file, its format, quarantine file). Default: ``<input stem>.predictions.<format>`` beside the input."""
    if output is None:
        fmt = fmt or "parquet"
        base = input_path.rstrip("/")
        stem = os.path.splitext(base)[0] if os.path.isfile(base) or "://" in base else base
        stem = stem.replace("*", "all").replace("?", "_")
        output = f"{stem}.predictions.{fmt}"
    else:
        suffix = SUFFIXES.get(os.path.splitext(output)[1].lower())
        if fmt is None:
            fmt = suffix or "parquet"
        elif suffix is not None and suffix != fmt:
            raise DataError(f"predict.output {output!r} ends in a {suffix} suffix but predict.format is {fmt}; "
                            "make them agree")
    if fmt not in PredictFormat.values():
        raise DataError(f"predict.format {fmt!r} is not one of {PredictFormat.values()}")
    output = storage.normalize(output)  # absolute, or an object-store URI
    return output, fmt, f"{os.path.splitext(output)[0]}.quarantine.parquet"


# -- the worker -----------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def as_number(value: Any) -> Any:
    """A cell of a numeric feature as the validator expects it: a float, None, or the value left as it
    was (text that is no number, a bool) so the validator refuses it with serving's message."""
    if _missing(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value


def as_text(value: Any) -> Any:
    """A cell of a categorical feature: text (a whole number without its ``.0``), or None."""
    if _missing(value):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value.item() if hasattr(value, "item") else value)


def _reasons(detail: list[dict[str, Any]]) -> dict[int, str]:
    """Validator detail (``loc = [body, row, field...]``) -> one reason per refused row."""
    out: dict[int, list[str]] = {}
    for d in detail:
        row = d["loc"][1]
        where = ".".join(map(str, d["loc"][2:])) or "record"
        out.setdefault(row, []).append(f"{where}: {d['msg']}")
    return {row: "; ".join(msgs) for row, msgs in out.items()}


def class_labels(pipeline: Any) -> list[str]:
    """The classes as serving names them in its probabilities (``proba_<label>`` here); none for a regressor."""
    if not hasattr(pipeline, "classes_"):
        return []
    return [str(c.item() if hasattr(c, "item") else c) for c in pipeline.classes_]


class BatchScorer:
    """Ray Data callable class: each actor gets the model once (the driver's loaded bundle, from the
    object store, so workers on other nodes need no access to the tracking store), then validates and
    scores batch after batch."""

    def __init__(self, bundle: Any) -> None:
        self.bundle = bundle
        self.validator = RequestValidator(self.bundle.schema)
        self.kinds = {c["name"]: c["type"] for c in self.bundle.schema}
        self.labels = class_labels(self.bundle.pipeline)

    def output_columns(self) -> list[str]:
        return [PREDICTION, *(PROBA + label for label in self.labels), MODEL_NAME, MODEL_VERSION]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        n = len(batch)
        clash = [c for c in batch.columns if c in self.output_columns() or c in (REASON, RAW)]
        if clash:
            raise DataError(f"input column(s) {clash} clash with the columns batch scoring adds; rename them")
        batch = batch.reset_index(drop=True)
        present = [c for c in self.validator.columns if c in batch.columns]
        cells = {c: [as_number(v) if self.kinds[c] != "string" else as_text(v)
                     for v in batch[c].astype(object).tolist()] for c in present}
        records = [{c: cells[c][i] for c in present} for i in range(n)]
        reason = np.full(n, None, dtype=object)
        if n:
            try:
                self.validator(records)
            except InvalidRequest as exc:
                for row, text in _reasons(exc.detail).items():
                    reason[row] = text
        good = np.flatnonzero(pd.isna(reason))
        out = batch.copy()
        for c in present:  # the values the model saw: numbers as float64, categories as text
            if self.kinds[c] == "string":
                out[c] = pd.Series(cells[c], dtype=object)
            else:
                out[c] = np.array([v if isinstance(v, float) else np.nan for v in cells[c]], dtype="float64")
        prediction = np.full(n, None, dtype=object)
        proba = np.full((n, len(self.labels)), np.nan)
        if len(good):
            valid = self.validator([records[i] for i in good])
            scored = score_many(self.bundle.pipeline, self.validator.columns, [valid])[0]
            if scored.proba is None:  # a regressor: its predicted values must be finite
                finite = np.isfinite(np.asarray(scored.predictions, dtype=float))
            else:
                finite = np.isfinite(scored.proba).all(axis=1)
                proba[good] = scored.proba
            reason[good[~finite]] = NON_FINITE  # as serving refuses them
            prediction[good] = scored.predictions
        bad = pd.notna(reason)
        prediction[bad] = None
        out[PREDICTION] = prediction
        for j, label in enumerate(self.labels):
            out[PROBA + label] = np.where(bad, np.nan, proba[:, j])
        out[MODEL_NAME] = self.bundle.model_name
        out[MODEL_VERSION] = str(self.bundle.version)
        out[REASON] = reason
        raw = np.full(n, None, dtype=object)
        if bad.any():  # the row exactly as read, for the quarantine file
            rows = batch.loc[bad].astype(object).where(batch.loc[bad].notna(), None).to_dict(orient="records")
            raw[bad] = [json.dumps({k: None if v is None else as_text(v) for k, v in r.items()}) for r in rows]
        out[RAW] = raw
        return out


# -- the driver -----------------------------------------------------------------------------------


class _Writer:
    """One output file written batch by batch (Parquet with a fixed schema, or CSV), renamed into place."""

    def __init__(self, path: str, fmt: str) -> None:
        # on an object store the upload lands whole at close, so there is no temp name to move
        self.path, self.fmt = path, fmt
        self.tmp = path if storage.is_uri(path) else path + ".tmp"
        self.rows = 0
        self._out: Any = None  # the output stream, on any filesystem
        self._pq: Any = None
        self._schema: Any = None
        self._header = True

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._out is None:
            storage.makedirs(storage.dirname(self.path))
            fs, tmp = storage.resolve(self.tmp)
            self._out = fs.open_output_stream(tmp)
        if self.fmt == "csv":
            self._out.write(frame.to_csv(header=self._header, index=False).encode("utf-8"))
            self._header = False
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._pq is None:
                # an all-null column of the first batch would pin the type to null: make it text
                self._schema = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                                          for f in table.schema]).remove_metadata()
                self._pq = pq.ParquetWriter(self._out, self._schema)
            try:
                table = table.select(self._schema.names).cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
                raise DataError(f"the input's columns change type or name between files or blocks ({exc}); "
                                "make them agree, or score the files one at a time") from exc
            self._pq.write_table(table)
        self.rows += len(frame)

    def _close(self) -> None:
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._out is not None:
            self._out.close()
            self._out = None

    def finish(self) -> None:
        self._close()
        if self.tmp != self.path:
            storage.replace(self.tmp, self.path)

    def abort(self) -> None:
        opened = self._out is not None
        self._close()
        if opened:  # never delete what an earlier run left at ``path`` on an object store
            storage.remove(self.tmp)


def _quarantined(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Bad rows as text, exactly as read, with their reason (the cleaning quarantine's layout)."""
    rows = [json.loads(r) for r in frame[RAW]]
    out = pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=columns, dtype=object)
    out["reason"] = frame[REASON].to_numpy()
    return out


def input_columns(files: list[str], fmt: str) -> list[str] | None:
    """The columns of local input files (Parquet footers, CSV headers), read before any work; None for URIs."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if any("://" in f for f in files):
        return None
    columns: list[str] = []
    for f in files:
        names = pq.read_schema(f).names if fmt == "parquet" else pacsv.open_csv(f).schema.names
        columns += [c for c in names if c not in columns]
    return columns


READ_CPUS = 0.25  # what each read task reserves


def worker_cpus_that_fit(workers: int, worker_cpus: float, total_cpus: float) -> float:
    """Each actor's CPU reservation, lowered so the pool leaves room for a read task.

    Actors that reserve every CPU starve the read tasks that feed them, and Ray Data then waits
    forever without an error (seen with 1 CPU and one actor of 0.5 beside a read task of 1).
    """
    room = max(total_cpus - READ_CPUS, 0.0) / workers
    if worker_cpus > room:
        logger.warning("predict.workers=%d x predict.worker_cpus=%s leave no CPU of %s for reading; each worker "
                       "reserves %.3g instead", workers, worker_cpus, total_cpus, room)
        return room
    return worker_cpus


def _read(files: list[str], fmt: str, schema: list[dict[str, Any]]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(files, num_cpus=READ_CPUS)
    # Features read as text: a stray "n/a" deep in a file must quarantine its row, not fail the type
    # inference of the whole file. Empty cells and NA markers read as null.
    features = {c["name"]: pa.string() for c in schema}
    return ray.data.read_csv(files, num_cpus=READ_CPUS, convert_options=pacsv.ConvertOptions(column_types=features,
                                                                        strings_can_be_null=True))


def score_file(conf: PredictConf, tracking_uri: str, model_name: str, version: str | int | None = None
               ) -> BatchResult:
    """Score every row of ``conf.input`` with the champion (or ``version``) and write the predictions.

    Ray must be initialised (or is started by Ray Data). The output holds every input column of the
    scored rows, then ``prediction``, ``proba_<class>`` (classifiers), ``model_name`` and
    ``model_version``; rows serving would refuse go to ``<output stem>.quarantine.parquet``.
    """
    import ray
    import ray.data

    from mlauto.track import BundleLoader

    input_path, output, fmt, workers = conf.input, conf.output, conf.format, conf.workers
    start = time.perf_counter()
    files, in_fmt = input_files(input_path)
    out_path, out_fmt, q_path = output_paths(input_path, output, fmt)
    if any(storage.normalize(f) == out_path for f in files):
        raise DataError(f"predict.output {out_path} is one of the input files; choose another path")
    bundle = BundleLoader(tracking_uri, model_name, with_reference=False)(version)  # fails now, naming what to do, when nothing is registered
    # the dtype predictions are written with: the classes' own, or float for a regressor
    dtype = np.asarray(bundle.pipeline.classes_).dtype if hasattr(bundle.pipeline, "classes_") else np.float64
    labels = class_labels(bundle.pipeline)
    added = {PREDICTION, MODEL_NAME, MODEL_VERSION, REASON, RAW, *(PROBA + label for label in labels)}
    columns = input_columns(files, in_fmt)
    if columns is not None:
        clash = [c for c in columns if c in added]
        if clash:
            raise DataError(f"input column(s) {clash} clash with the columns batch scoring adds; rename them")
        absent = [c["name"] for c in bundle.schema if c["name"] not in columns]
        if absent:
            logger.warning("feature column(s) %s are missing from %s: every row will be quarantined", absent,
                           input_path)
    logger.info("scoring %d %s file(s) from %s with %s version %s, %d worker(s)", len(files), in_fmt, input_path,
                bundle.model_name, bundle.version, workers)
    if not ray.is_initialized():
        ray.init()
    worker_cpus = worker_cpus_that_fit(workers, conf.worker_cpus, ray.cluster_resources().get("CPU", 1.0))
    ds = _read(files, in_fmt, bundle.schema).map_batches(
        BatchScorer, fn_constructor_kwargs={"bundle": bundle}, batch_format="pandas",
        batch_size=conf.batch_size, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=worker_cpus)
    ds.context.execution_options.preserve_order = True  # output rows in input order
    writer, qwriter = _Writer(out_path, out_fmt), _Writer(q_path, "parquet")
    rows_in, reasons = 0, {}
    last: pd.DataFrame | None = None
    if storage.exists(q_path):
        storage.remove(q_path)  # a stale quarantine from an earlier run would be read as this run's
    try:
        for frame in _batches(ds):
            rows_in += len(frame)
            bad = frame[REASON].notna().to_numpy()
            scored = frame.loc[~bad].drop(columns=[REASON, RAW])
            if len(scored):
                scored[PREDICTION] = scored[PREDICTION].astype(dtype)
            last = scored
            if len(scored):
                writer.write(scored)
            if bad.any():
                q = _quarantined(frame.loc[bad], [c for c in frame.columns if c not in added])
                for text, count in q["reason"].value_counts().items():
                    reasons[text] = reasons.get(text, 0) + int(count)
                qwriter.write(q)
        if rows_in == 0:
            raise DataError(f"predict.input {input_path!r} holds no rows; point it at a file with rows to score")
        if writer.rows == 0 and last is not None:
            writer.write(last)  # every row was quarantined: an empty output with the columns
        writer.finish()
        if qwriter.rows:
            qwriter.finish()
    except BaseException:
        writer.abort()
        qwriter.abort()
        raise
    result = BatchResult(input_path, out_path, out_fmt, bundle.model_name, str(bundle.version), rows_in,
                         writer.rows, qwriter.rows, dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                         q_path if qwriter.rows else None, round(time.perf_counter() - start, 3))
    if result.rows_in != result.rows_scored + result.rows_quarantined:  # never expected: rows lost
        raise RuntimeError(f"batch scoring lost rows: {result.to_dict()}")
    logger.info("scored %d of %d row(s) with %s version %s -> %s (%.1fs)", result.rows_scored, rows_in,
                result.model_name, result.model_version, out_path, result.seconds)
    if result.rows_quarantined:
        logger.warning("quarantined %d row(s) -> %s: %s", result.rows_quarantined, q_path,
                       "; ".join(f"{k} ({v})" for k, v in list(result.reasons.items())[:5]))
    return result


def _batches(ds: Any) -> Iterator[pd.DataFrame]:
    yield from ds.iter_batches(batch_size=None, batch_format="pandas")
