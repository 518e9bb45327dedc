"""Persistence for the monitor: an append-only event log and an atomic state snapshot."""

from __future__ import annotations

import json
import os
import pickle
import time
from typing import Any


class StateStore:
    """``events.jsonl`` (every event, never rewritten) and ``state.pkl`` (replaced atomically)."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.events_path = os.path.join(self.directory, "events.jsonl")
        self.state_path = os.path.join(self.directory, "state.pkl")

    def append_event(self, event: dict[str, Any]) -> None:
        with open(self.events_path, "a") as fh:
            fh.write(json.dumps(event, default=str) + "\n")

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        if not os.path.exists(self.events_path):
            return []
        with open(self.events_path) as fh:
            lines = fh.readlines()
        return [json.loads(line) for line in (lines[-limit:] if limit else lines) if line.strip()]

    def save(self, state: dict[str, Any]) -> None:
        tmp = f"{self.state_path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            pickle.dump({"saved": time.time(), **state}, fh)
        os.replace(tmp, self.state_path)

    def load(self) -> dict[str, Any] | None:
        if not os.path.exists(self.state_path):
            return None
        with open(self.state_path, "rb") as fh:
            return pickle.load(fh)
