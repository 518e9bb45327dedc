"""Batch scoring's config check and worker count, without Ray. Scoring itself: tests/integration/test_batch.py."""

from __future__ import annotations

import os

import pytest


def test_workers_leave_a_cpu_share_for_reading():
    """Actors reserving every CPU starve the read tasks: Ray Data would wait forever (seen with 1 CPU)."""
    from mlauto.serve.batch import READ_CPUS, worker_cpus_that_fit

    assert worker_cpus_that_fit(2, 0.5, 2.0) == 0.5
    assert worker_cpus_that_fit(1, 0.5, 1.0) == 0.5
    assert worker_cpus_that_fit(2, 1.0, 1.0) == pytest.approx((1.0 - READ_CPUS) / 2)
    assert worker_cpus_that_fit(1, 1.0, 1.0) + READ_CPUS <= 1.0


def test_predict_config_is_checked(tmp_path):
    from hydra.errors import ConfigCompositionException

    from tests.helpers import make_config
    from mlauto.errors import ConfigError

    with pytest.raises(ConfigError, match="predict.input"):
        make_config(["action=predict"])
    with pytest.raises(ConfigCompositionException, match="predict.format") as exc:  # an Enum of the schema
        make_config(["action=predict", "predict.input=x.csv", "predict.format=json"])
    assert "'json'" in str(exc.value.__cause__) and "parquet, csv" in str(exc.value.__cause__)
    with pytest.raises(ConfigError, match="predict.workers"):
        make_config(["action=predict", "predict.input=x.csv", "predict.workers=0"])
    cfg = make_config(["action=predict", "predict.input=x.csv", "version=3"])
    assert cfg.predict.input == os.path.abspath("x.csv") and cfg.predict.output is None
    assert (cfg.predict.batch_size, cfg.predict.workers, cfg.version) == (1024, 2, "3")
