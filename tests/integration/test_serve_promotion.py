"""Compare-and-set promotion on a real MLflow registry, through the cluster's one alias mover (a
named Ray actor): a retrain moves the champion only if it is still the version it was judged
against; an operator always wins; concurrent moves never interleave."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlauto.retrain import unseen_by
from mlauto.track import CHAMPION, PREVIOUS, champion_generation, move_champion, promote


@pytest.fixture
def registry(ray_session, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model("m")
    for _ in range(6):
        client.create_model_version("m", source=str(tmp_path / "model"))
    promote(uri, "m", "1")
    return uri, client


def _champion(client) -> str:
    return str(client.get_model_version_by_alias("m", CHAMPION).version)


def test_retrain_moves_only_if_champion_unchanged(registry):
    uri, client = registry
    ok = move_champion(uri, "m", "2", expected="1")
    assert ok.moved and _champion(client) == "2" and ok.previous == "1"
    stale = move_champion(uri, "m", "3", expected="1")  # judged against 1, but 2 is champion now
    assert not stale.moved and stale.champion == "2" and "moved from version 1 to 2" in stale.reason
    assert _champion(client) == "2"


def test_operator_wins_and_a_hand_edit_is_seen(registry):
    uri, client = registry
    promote(uri, "m", "4")  # the operator, while a retrain judged against 1 runs
    assert not move_champion(uri, "m", "5", expected="1").moved
    rolled = move_champion(uri, "m", None)  # rollback
    assert rolled.moved and _champion(client) == "1"
    assert str(client.get_model_version_by_alias("m", PREVIOUS).version) == "4"
    client.set_registered_model_alias("m", CHAMPION, "3")  # moved by hand in MLflow's UI
    assert not move_champion(uri, "m", "5", expected="1").moved and _champion(client) == "3"


def test_concurrent_retrains_one_wins(registry):
    uri, client = registry
    results: dict[str, bool] = {}

    def attempt(version: str) -> None:
        results[version] = move_champion(uri, "m", version, expected="1").moved

    threads = [threading.Thread(target=attempt, args=(v,)) for v in ("2", "3", "4", "5", "6")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, moved in results.items() if moved]
    assert len(winners) == 1 and _champion(client) == winners[0]
    assert str(client.get_model_version_by_alias("m", PREVIOUS).version) == "1"


def test_promote_then_rollback_to_the_same_version_still_supersedes(registry):
    """ABA: the operator promotes 4 and rolls back to 1 while a retrain judged against 1 runs."""
    uri, client = registry
    generation = champion_generation(uri, "m")
    promote(uri, "m", "4")
    move_champion(uri, "m", None)
    assert _champion(client) == "1"
    stale = move_champion(uri, "m", "5", expected="1", generation=generation)
    assert not stale.moved and "1 again" in stale.reason and _champion(client) == "1"
    fresh = move_champion(uri, "m", "5", expected="1", generation=champion_generation(uri, "m"))
    assert fresh.moved and _champion(client) == "5"


def test_judging_rows_leave_out_what_the_champion_saw():
    seen = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    test = pd.DataFrame({"a": [2.0, 4.0, 3.0, 5.0], "y": [1, 1, 1, 0]})
    assert unseen_by(test, seen, ["a", "y"]).to_dict(orient="list") == {"a": [4.0, 3.0, 5.0], "y": [1, 1, 0]}
    assert len(unseen_by(test, None, ["a", "y"])) == 4
