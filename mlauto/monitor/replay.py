"""Replays rows to a live endpoint: first in-distribution, then shifted, and reports what the monitor saw.

The quickstart uses it so a user sees predictions served, drift detected and a retrain, in the console.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

logger = logging.getLogger(__name__)


def as_json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: missing values as null, timestamps as ISO text (as the schema expects)."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].map(lambda v: v.isoformat() if pd.notna(v) else None)
    return out.astype(object).where(out.notna(), None).to_dict(orient="records")


def post_rows(session: requests.Session, url: str, frame: pd.DataFrame, batch: int,
              desc: str) -> tuple[list[Any], list[tuple[str, int, int]]]:
    """POST ``frame`` in batches to ``url``/predict; returns the predictions in row order and, per
    request, (request id, first row, row count) for feedback."""
    predictions: list[Any] = []
    requests_made: list[tuple[str, int, int]] = []
    records = as_json_records(frame)
    for start in tqdm(range(0, len(records), batch), desc=desc, unit="req", mininterval=1.0, disable=None):
        chunk = records[start : start + batch]
        resp = session.post(f"{url}/predict", json=chunk, timeout=30)
        if resp.status_code != 200:
            raise RuntimeError(f"POST {url}/predict answered {resp.status_code}: {resp.text[:2000]}")
        body = resp.json()
        predictions.extend(body["predictions"])
        requests_made.append((body["request_id"], start, len(chunk)))
    return predictions, requests_made


def send_feedback(session: requests.Session, url: str, requests_made: list[tuple[str, int, int]],
                  labels: np.ndarray) -> dict[str, Any]:
    """POST the true labels of earlier requests to ``url``/feedback; returns the last performance status."""
    status: dict[str, Any] = {}
    for request_id, start, count in requests_made:
        chunk = [v.item() if hasattr(v, "item") else v for v in labels[start : start + count]]
        resp = session.post(f"{url}/feedback", json={"request_id": request_id, "labels": chunk}, timeout=30)
        if resp.status_code != 200:
            raise RuntimeError(f"POST {url}/feedback answered {resp.status_code}: {resp.text[:2000]}")
        status = resp.json()["performance"]
    return status


def wait_for(
    poll: Callable[[], dict[str, Any]], until: Callable[[dict[str, Any]], bool], timeout_s: float, what: str,
    every: float = 0.5,
) -> dict[str, Any]:
    """Poll until ``until(status)`` holds; returns that status."""
    deadline = time.time() + timeout_s
    while True:
        status = poll()
        if until(status):
            return status
        if time.time() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}; last status: {status}")
        time.sleep(every)


def shift_numeric(frame: pd.DataFrame, scale: pd.Series, shift: float) -> pd.DataFrame:
    """Move every numeric column by ``shift`` reference standard deviations."""
    out = frame.copy()
    for col in scale.index:
        if col in out.columns:
            out[col] = out[col] + shift * float(scale[col])
    return out


def replay(
    url: str,
    rows: pd.DataFrame,
    labels: np.ndarray,
    reference_std: pd.Series,
    *,
    shift: float,
    batch: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Send ``rows``, then the same rows shifted; wait for drift and for the retrain it triggers."""
    session = requests.Session()

    def drift_status() -> dict[str, Any]:
        return session.get(f"{url}/drift", timeout=30).json()

    before = drift_status()
    preds, made = post_rows(session, url, rows, batch, "replay held-out rows")
    regression = bool(preds) and isinstance(preds[0], float) and np.asarray(labels).dtype.kind == "f"
    if regression:
        accuracy = None
        rmse = float(np.sqrt(np.mean((np.asarray(preds, dtype=float) - np.asarray(labels, dtype=float)) ** 2)))
        logger.info("predictions served: %d held-out rows, RMSE against their labels %.3f", len(preds), rmse)
    else:
        accuracy = float(np.mean(np.asarray(preds, dtype=object) == np.asarray(labels, dtype=object)))
        logger.info("predictions served: %d held-out rows, accuracy against their labels %.3f", len(preds), accuracy)
    perf = send_feedback(session, url, made, np.asarray(labels))
    if regression:
        logger.info("feedback joined: %d labels; rolling RMSE %.3f", perf["labels_total"], perf["rmse"])
    else:
        logger.info("feedback joined: %d labels; rolling accuracy %.3f, label-free estimate %.3f",
                    perf["labels_total"], perf["accuracy"], perf["estimated_accuracy"])
    target_seen = before["rows_seen"] + len(rows)
    status = wait_for(drift_status, lambda s: s["rows_seen"] >= target_seen, 60,
                      "the monitor to receive the replayed rows")
    clean_drifts = status["drift_count"] - before["drift_count"]
    logger.info("monitor has seen %d rows in %d window test(s); drift alarms on held-out rows: %d",
                status["rows_seen"], status["tests_run"], clean_drifts)
    shifted = shift_numeric(rows, reference_std, shift)
    post_rows(session, url, shifted, batch, f"replay rows shifted by {shift:g} sd")
    status = wait_for(drift_status, lambda s: s["drift_count"] > before["drift_count"] + clean_drifts, 60,
                      "drift to be detected on the shifted rows")
    last = status["last_test"]
    logger.info("DRIFT detected after %d rows: %d of %d features below the corrected threshold %.2e",
                status["rows_seen"], sum(p < last["threshold"] for p in last["p_vals"]), len(last["p_vals"]),
                last["threshold"])
    n_before = len(before.get("retrains", []))
    status = wait_for(drift_status, lambda s: len(s["retrains"]) > n_before and not s["retrain_running"],
                      timeout_s, "the retrain triggered by drift", every=2.0)
    retrain = status["retrains"][-1]
    if retrain["status"] == "finished":
        logger.info("retrain produced %s version %s (trained with %d labelled production rows): challenger %s=%.4f "
                    "vs champion %.4f on the %s -> %s", retrain.get("model_name"), retrain["version"],
                    retrain.get("production_rows", 0), retrain["metric"], retrain["challenger_score"],
                    retrain["champion_score"], retrain.get("judged_on", "test split"),
                    "promoted" if retrain["promoted"] else "rejected")
        if retrain["promoted"]:
            wait_for(lambda: session.get(f"{url}/health", timeout=30).json(),
                     lambda h: h["model_version"] == str(retrain["version"]), 60,
                     "the endpoint to swap in the promoted version")
            logger.info("endpoint now serves version %s (the replicas swapped it in place)", retrain["version"])
    else:
        logger.warning("retrain failed: %s (the live model keeps serving)", retrain.get("error"))
    return {
        "rows_clean": len(rows), "rows_shifted": len(shifted), "accuracy_clean": accuracy, "feedback": perf,
        "drift_alarms_clean": clean_drifts, "rows_seen": status["rows_seen"], "tests_run": status["tests_run"],
        "drift_count": status["drift_count"], "retrain": retrain,
    }
