"""Moving the ``champion`` alias: compare-and-set for retrains, always for the operator, one move at a time.

MLflow has no compare-and-set on aliases, so mlauto serializes its own moves:

- With Ray connected, every move runs inside one named, detached actor (``ALIAS_ACTOR`` in
  namespace ``mlauto``, one CPU-less process for the whole cluster). Its calls run one after the
  other, so the read-compare-write of a retrain and an operator's promote or rollback can never
  interleave, from any node. The move runs *in* the actor rather than under a lock it hands out, so
  a caller that dies mid-move can never leave the lock held.
- Every move also holds an exclusive file lock (``fcntl``) beside the tracking store (or in the temp
  folder for a tracking server) and a process lock, which covers callers without Ray on the same
  machine (``mlauto action=promote`` with no cluster).

A retrain passes ``expected`` (the champion it was judged against) and the champion's *generation*
as it read it: every mlauto move bumps the registered model's tag ``mlauto.champion_moves``, so a
promote-then-rollback back to the same version during the retrain still counts as a move (no ABA).
The alias and the tag are re-read right before the move; if either changed (an operator's promote or
rollback, or a hand edit of the alias in MLflow's UI) nothing moves and the caller learns the current
champion. An operator's move passes no ``expected`` and always lands.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlauto.errors import ModelNotFoundError
from mlauto.track.store import CHAMPION, PREVIOUS, set_alias

logger = logging.getLogger(__name__)

ALIAS_ACTOR, ALIAS_NAMESPACE = "mlauto-alias-mover", "mlauto"
GENERATION_TAG = "mlauto.champion_moves"
_PROCESS_LOCK = threading.Lock()


@dataclass(frozen=True)
class AliasMove:
    """What a move did: ``moved`` false with ``current`` set when the champion was not ``expected``."""

    moved: bool
    champion: str | None  # the champion after the call
    previous: str | None  # the champion before it (what ``previous`` now points to, when moved)
    expected: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alias(client: MlflowClient, model_name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def champion_generation(uri: str, model_name: str) -> int:
    """How many times mlauto has moved the champion of ``model_name`` (read it *before* the champion)."""
    try:
        return int(MlflowClient(uri).get_registered_model(model_name).tags.get(GENERATION_TAG, 0))
    except (MlflowException, ValueError):
        return 0


def _lock_path(uri: str, model_name: str) -> str:
    key = hashlib.sha256(f"{uri}|{model_name}".encode()).hexdigest()[:16]
    if uri.startswith("sqlite:///"):
        folder = os.path.dirname(uri[len("sqlite:///"):]) or tempfile.gettempdir()
    else:
        folder = tempfile.gettempdir()
    return os.path.join(folder if os.path.isdir(folder) else tempfile.gettempdir(), f".mlauto-alias-{key}.lock")


def move_here(uri: str, model_name: str, version: str | None, expected: str | None = None,
              generation: int | None = None) -> AliasMove:
    """The move itself, under the process and file locks. ``version=None`` rolls back to ``previous``."""
    with _PROCESS_LOCK, open(_lock_path(uri, model_name), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return _move(MlflowClient(uri), uri, model_name, version, (expected, generation))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _move(client: MlflowClient, uri: str, model_name: str, version: str | None,
          compare: tuple[str | None, int | None]) -> AliasMove:
    expected, generation = compare
    moves = champion_generation(uri, model_name)
    current = _alias(client, model_name, CHAMPION)  # re-read right before moving: the compare of the CAS
    if expected is not None and (current != str(expected) or (generation is not None and moves != generation)):
        how = (f"moved from version {expected} to {current}" if current != str(expected)
               else f"was moved {moves - generation} time(s) and is version {expected} again")
        reason = (f"the champion {how} while this was decided (an operator's promote or rollback, or an edit "
                  "in MLflow)")
        logger.warning("alias %s of %s not moved to %s: %s", CHAMPION, model_name, version, reason)
        return AliasMove(False, current, None, str(expected), reason)
    if version is None:  # a rollback: to what ``previous`` points at now
        version = _alias(client, model_name, PREVIOUS)
        if version is None:
            raise ModelNotFoundError(f"model {model_name!r} has no '{PREVIOUS}' alias: nothing to roll back to")
    try:
        client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelNotFoundError(f"model {model_name!r} has no version {version} in {uri}") from exc
    if current == str(version):
        return AliasMove(True, current, None, expected, "already the champion")
    set_alias(uri, model_name, str(version), CHAMPION)
    if current is not None:
        set_alias(uri, model_name, current, PREVIOUS)
    client.set_registered_model_tag(model_name, GENERATION_TAG, str(moves + 1))
    return AliasMove(True, str(version), current, expected)


class _Mover:
    """The cluster's one alias mover (a named detached actor): its calls run one at a time."""

    def move(self, uri: str, model_name: str, version: str | None, expected: str | None,
             generation: int | None) -> AliasMove:
        return move_here(uri, model_name, version, expected, generation)


def _mover() -> Any:
    import ray

    cls = ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1)(_Mover)
    return cls.options(name=ALIAS_ACTOR, namespace=ALIAS_NAMESPACE, lifetime="detached",
                       get_if_exists=True).remote()


def move_champion(uri: str, model_name: str, version: str | None, expected: str | None = None,
                  generation: int | None = None) -> AliasMove:
    """Point ``champion`` at ``version`` (``None``: roll back to ``previous``) and ``previous`` at the old
    champion, atomically with respect to every other mlauto move. With ``expected`` (a retrain), only
    if the champion is still ``expected`` and, given ``generation`` (:func:`champion_generation` read
    before the champion), was not moved since; without (an operator), always."""
    import ray

    version = None if version is None else str(version)
    expected = None if expected is None else str(expected)
    if ray.is_initialized():
        return ray.get(_mover().move.remote(uri, model_name, version, expected, generation))
    return move_here(uri, model_name, version, expected, generation)


def promote(uri: str, model_name: str, version: str) -> str | None:
    """Point ``champion`` at ``version`` and ``previous`` at the old champion (an operator's move: it
    always lands, serialized with every other mlauto move); returns the old one."""
    move = move_champion(uri, model_name, str(version))
    return move.previous if move.previous is not None else move.champion if move.reason else None
