"""Request validation generated from the training schema: a wrong field gets a 422 naming it."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from mlauto.errors import MlautoError


class InvalidRequest(MlautoError):
    """The body does not match the feature schema; ``detail`` lists each bad field."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in self.detail)


def record_model(schema: list[dict[str, Any]]) -> type[BaseModel]:
    """A pydantic model of one record. Strict: no string-to-number coercion; unknown fields refused.

    Every field must be present, and may be null: the fitted imputation handles missing values.
    Numbers must be finite (JSON's NaN/Infinity extensions are refused). Python names are generated and
    the column name is the alias, so any column name works. The training range or categories are
    shown in the OpenAPI description; values outside them are accepted (that is drift, for the monitor).
    """
    fields: dict[str, Any] = {}
    for i, col in enumerate(schema):
        if col["type"] == "string":
            seen = col.get("categories") or []
            about = f"categories seen in training: {seen[:20]}{' ...' if len(seen) > 20 else ''}"
            fields[f"f{i}"] = (Optional[str], Field(..., alias=col["name"], description=about))
        else:
            about = f"training range [{col.get('min')}, {col.get('max')}]"
            fields[f"f{i}"] = (Optional[float], Field(..., alias=col["name"], allow_inf_nan=False, description=about))
    return create_model("Record", __config__=ConfigDict(strict=True, extra="forbid"), **fields)


class RequestValidator:
    """Accepts one record (a JSON object) or a list of them; returns plain dicts."""

    def __init__(self, schema: list[dict[str, Any]]) -> None:
        self.columns = [c["name"] for c in schema]
        self.model = record_model(schema)

    def __call__(self, body: Any) -> list[dict[str, Any]]:
        single = isinstance(body, dict)
        if not single and not isinstance(body, list):
            raise InvalidRequest([{"loc": ["body"], "field": None, "type": "type_error",
                                   "msg": "send a JSON object keyed by feature name, or a list of such objects"}])
        items = [body] if single else body
        if not items:
            raise InvalidRequest([{"loc": ["body"], "field": None, "type": "empty",
                                   "msg": "the list holds no records"}])
        records, detail = [], []
        for i, item in enumerate(items):
            try:
                records.append(self.model.model_validate(item).model_dump(by_alias=True))
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    loc = ["body", *([] if single else [i]), *err["loc"]]
                    field = next((p for p in reversed(err["loc"]) if isinstance(p, str)), None)
                    detail.append({"loc": loc, "field": field, "msg": err["msg"], "type": err["type"]})
        if detail:
            raise InvalidRequest(detail)
        return records
