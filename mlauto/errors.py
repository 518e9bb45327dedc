"""Errors that name what to fix.

Every error keeps its constructor arguments in ``self.args`` so it pickles cleanly:
errors raised inside Ray tasks and actors cross process boundaries.
"""

from __future__ import annotations

from typing import Any, Iterable

from mlauto.redact import redact_url


class MlautoError(Exception):
    """Base class for mlauto errors."""


class ConfigError(MlautoError):
    """A config key holds a value that is not allowed."""

    def __init__(self, key: str, given: Any, allowed: Iterable[Any] | str | None = None, hint: str = "") -> None:
        allowed_list = allowed if isinstance(allowed, str) or allowed is None else list(allowed)
        super().__init__(key, given, allowed_list, hint)
        self.key, self.given, self.allowed, self.hint = key, given, allowed_list, hint

    def __str__(self) -> str:
        msg = f"config key '{self.key}' has invalid value {redact_url(repr(self.given))}"
        if self.allowed is not None:
            allowed = self.allowed if isinstance(self.allowed, str) else ", ".join(map(str, self.allowed))
            msg += f"; allowed: {allowed}"
        if self.hint:
            msg += f". {self.hint}"
        return msg


class DataError(MlautoError):
    """Input data cannot be used as given; the message says what to fix."""


class UnknownRows(MlautoError, KeyError):
    """Feedback names rows the monitor never saw (or saw too long ago to keep)."""


class DuplicateFeedback(MlautoError, ValueError):
    """Feedback for rows that already have a label; counting it twice would skew accuracy."""


class ModelNotFoundError(MlautoError):
    """A registered model, version or alias does not exist in the tracking store."""


class RunNotFoundError(MlautoError):
    """A run id (or prefix) that matches no run, or more than one, in the tracking store."""

    def __init__(self, run_id: str, uri: str, hint: str = "") -> None:
        super().__init__(run_id, uri, hint)
        self.run_id, self.uri, self.hint = run_id, uri, hint

    def __str__(self) -> str:
        msg = self.hint or f"no run {self.run_id!r} in the tracking store {self.uri}"
        return (f"{msg}; list the run ids with `mlauto name=<name> action=runs` (same root or tracking.uri), "
                f"or browse them with `make mlflow-ui`")


class ReproduceError(MlautoError):
    """A run cannot be reproduced as recorded (its data or record is gone); the message says why."""
