"""Reading a request body safely: a byte limit counted as it streams, and JSON parsing that never 500s.

A ``Content-Length`` header can be absent (chunked transfer) or lie, so the limit is counted on the
bytes actually received, and the read stops at the first chunk past it. Deep nesting makes Python's
JSON parser raise ``RecursionError``, which is not a ``ValueError``: both are a client's error (400).
Large bodies are parsed in a worker thread so the replica's event loop (health checks, small
requests) keeps running.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request

PARSE_IN_THREAD = 64 * 1024  # bytes: smaller bodies parse inline (a thread hop costs more than they do)


class BodyError(Exception):
    """A body the server refuses before validation: ``status`` 400 or 413, ``detail`` says why."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def too_large(limit: int, seen: int | str) -> BodyError:
    return BodyError(413, f"body of {seen} bytes is over the limit of {limit} (serve.max_body_bytes); "
                          "send fewer records per request")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or :class:`BodyError` 413 as soon as more than ``limit`` bytes have arrived."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise too_large(limit, int(length))
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_large(limit, f"more than {seen}")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """JSON or :class:`BodyError` 400: malformed, not UTF-8, or nested too deep. (NaN is let through:
    the validator refuses it naming the field.)"""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BodyError(400, [{"loc": ["body"], "msg": "the JSON is nested too deeply"}]) from None
    except (ValueError, UnicodeDecodeError):
        raise BodyError(400, [{"loc": ["body"], "msg": "the body is not valid JSON"}]) from None


async def read_json(request: Request, limit: int) -> Any:
    """Read (bounded) and parse; bodies over :data:`PARSE_IN_THREAD` bytes parse off the event loop."""
    raw = await read_limited(request, limit)
    if len(raw) > PARSE_IN_THREAD:
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


def brief(value: Any, limit: int = 60) -> str:
    """A short, safe description of a client's value for an error message (no deep repr)."""
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = repr(value[:limit])
    else:
        text = f"a JSON {'array' if isinstance(value, list) else 'object'}"
    return text[:limit]
