"""Tracking actions' config checks and old runs' parameter strings, without Ray or a training run."""

from __future__ import annotations

import pytest

from mlauto.errors import ConfigError
from tests.helpers import make_config


def test_compare_and_reproduce_need_their_keys():
    with pytest.raises(ConfigError, match="'runs'"):
        make_config(["action=compare", "runs=[abc]"])
    with pytest.raises(ConfigError, match="'run_id'.*action=runs"):
        make_config(["action=reproduce"])
    assert make_config(["action=compare", "runs=[abc,def]"]).runs == ["abc", "def"]


def test_param_strings_of_older_runs_parse_back_to_values():
    from mlauto.reproduce import _parse

    assert _parse("4.5705630998014515") == 4.5705630998014515 and _parse("1000") == 1000
    assert _parse("None") is None and _parse("True") is True and _parse("lbfgs") == "lbfgs"
