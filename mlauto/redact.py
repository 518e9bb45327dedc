"""Credentials out of anything logged or tracked: ``scheme://user:password@host`` -> ``scheme://user:***@host``."""

from __future__ import annotations

import re
from typing import Any

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]+)@")


def redact_url(text: str) -> str:
    """Every ``user:password@`` in ``text`` with the password masked; other text unchanged."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact(value: Any) -> Any:
    """``value`` (nested dicts, lists and strings) with every URL's password masked."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value
