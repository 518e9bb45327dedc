"""The OpenAPI document of the served model: ``/predict`` and ``/feedback`` request bodies built from
the champion's feature schema (types, training ranges, categories, an example) and its classes.

The handlers take a raw ``Request`` (to bound the body as it streams), so FastAPI cannot infer these
bodies; they are written into the document here, per model version. Values outside a training range
or category list are accepted by the server (that is drift, the monitor's business), so ranges and
categories are given as ``x-training-*`` annotations and in descriptions, not as JSON Schema limits.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.utils import get_openapi


def record_schema(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of one record: every feature required (null allowed: imputed), no others."""
    props: dict[str, Any] = {}
    for col in schema:
        if col["type"] == "string":
            seen = col.get("categories") or []
            props[col["name"]] = {"type": ["string", "null"], "x-training-categories": seen[:50],
                                  "description": f"categories seen in training: {seen[:20]}"
                                                 f"{' ...' if len(seen) > 20 else ''}; others are accepted"}
        else:
            low, high = col.get("min"), col.get("max")
            props[col["name"]] = {"type": ["number", "null"], "x-training-min": low, "x-training-max": high,
                                  "description": f"training range [{low}, {high}]; a finite number"}
    return {"title": "Record", "type": "object", "properties": props, "required": [c["name"] for c in schema],
            "additionalProperties": False}


def example_record(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """A record the model accepts: the middle of each training range, the first category."""
    out: dict[str, Any] = {}
    for col in schema:
        if col["type"] == "string":
            out[col["name"]] = (col.get("categories") or [None])[0]
        else:
            low, high = col.get("min"), col.get("max")
            mid = None if low is None or high is None else (low + high) / 2
            out[col["name"]] = round(mid, 4) if isinstance(mid, float) else mid
    return out


def label_schema(classes: list[Any] | None) -> dict[str, Any]:
    if classes is None:
        return {"type": "number", "description": "the true value: a finite number"}
    plain = [c.item() if hasattr(c, "item") else c for c in classes]
    kind = ("boolean" if all(isinstance(c, bool) for c in plain) else
            "integer" if all(isinstance(c, int) and not isinstance(c, bool) for c in plain) else
            "number" if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in plain) else "string")
    return {"type": kind, "x-known-classes": plain,
            "description": f"the true class; the model knows {plain[:20]}. A well-typed label of another "
                           "class is quarantined as a possible new class"}


def request_bodies(schema: list[dict[str, Any]], classes: list[Any] | None, max_records: int) -> dict[str, Any]:
    """``{"predict": requestBody, "feedback": requestBody}`` for the OpenAPI ``paths``."""
    record = {"$ref": "#/components/schemas/Record"}
    example = example_record(schema)
    predict = {
        "required": True,
        "description": f"one record keyed by feature name, or a list of up to {max_records} (serve.max_records)",
        "content": {"application/json": {
            "schema": {"anyOf": [record, {"type": "array", "items": record, "minItems": 1, "maxItems": max_records}]},
            "example": example}},
    }
    label = label_schema(classes)
    first = label.get("x-known-classes", [1.0])[0] if classes is not None else 1.0
    feedback = {
        "required": True,
        "description": "the request id from /predict and the true label (one record) or labels (one per record)",
        "content": {"application/json": {
            "schema": {"title": "Feedback", "type": "object", "required": ["request_id"], "additionalProperties": False,
                       "properties": {"request_id": {"type": "string", "maxLength": 64},
                                      "label": label,
                                      "labels": {"type": "array", "items": label, "maxItems": max_records}}},
            "example": {"request_id": "0123456789abcdef0123456789abcdef", "label": first}}},
    }
    return {"predict": predict, "feedback": feedback, "record": record_schema(schema)}


def document(routes: list[Any], bundle: Any, max_records: int, root_path: str = "") -> dict[str, Any]:
    """The whole OpenAPI document for ``bundle`` (the app's routes, with the request bodies filled in)."""
    spec = get_openapi(title=f"mlauto model server: {bundle.model_name} version {bundle.version}",
                       version=str(bundle.version), routes=routes,
                       description="POST /predict with one record or a list keyed by feature name; POST /feedback "
                                   "with the request id and true label(s); GET /model for the schema.")
    classes = list(bundle.pipeline.classes_) if bundle.task != "regression" and hasattr(bundle.pipeline, "classes_") \
        else None
    bodies = request_bodies(bundle.schema, classes, max_records)
    spec.setdefault("components", {}).setdefault("schemas", {})["Record"] = bodies["record"]
    for path, key in (("/predict", "predict"), ("/feedback", "feedback")):
        if path in spec.get("paths", {}) and "post" in spec["paths"][path]:
            spec["paths"][path]["post"]["requestBody"] = bodies[key]
    if root_path:
        spec["servers"] = [{"url": root_path}]
    return spec
