"""Drift detectors without Ray: shifts caught within a stated number of rows, clean data left alone."""

import pickle

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException

from mlauto.errors import ConfigError
from mlauto.monitor import DETECTORS, make_detector
from mlauto.monitor.detectors import corrected_drift, permutation_mmd2
from mlauto.monitor.label_drift import ErrorRateDetector, cusum_arl, cusum_threshold

WINDOW = 100


def _rows(rng, n, shift=0.0):
    """Mixed scales like mlauto's preprocessed features: raw numerics (one in the thousands) and a one-hot."""
    num = np.c_[rng.normal(shift, 1.0, n), rng.normal(1000.0, 200.0, n), rng.uniform(0, 1, n)]
    return np.c_[num, np.eye(3)[rng.choice(3, n, p=[0.6, 0.3, 0.1])]].astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    return _rows(np.random.default_rng(0), 1500)


@pytest.mark.parametrize("name,options", [("ks", {}), ("ks", {"correction": "fdr"}), ("scipy_ks", {}),
                                          ("scipy_ks", {"correction": "fdr"}), ("mmd", {"n_permutations": 500})])
def test_clean_windows_stay_quiet_and_a_shift_is_caught_in_one_window(reference, name, options):
    rng = np.random.default_rng(1)
    det = make_detector(name, reference, p_val=0.05, **options)
    clean = [det.test(_rows(rng, WINDOW)) for _ in range(30)]
    # At p_val 0.05 a calibrated test alarms on <= 5% of clean windows; allow binomial noise (P(>4 of 30) ~ 6%).
    false_alarms = sum(r["is_drift"] for r in clean)
    assert false_alarms <= 4, [r["p_vals"] for r in clean if r["is_drift"]]
    # A 0.75-sigma shift of the first feature: caught by the first window of 100 rows, every time.
    shifted = [det.test(_rows(rng, WINDOW, shift=0.75)) for _ in range(5)]
    assert all(r["is_drift"] for r in shifted), [min(r["p_vals"]) for r in shifted]
    assert all(len(r["p_vals"]) == reference.shape[1] and r["n_rows"] == WINDOW for r in clean + shifted)
    assert all(0.0 <= p <= 1.0 for r in clean + shifted for p in r["p_vals"])


def test_mmd_p_value_counts_the_observed_statistic_and_is_uniform_on_clean_data(reference):
    """Alibi 0.13 can return p = 0 (issue #960); with the observed statistic counted p >= 1/(1+P)."""
    import torch

    det = make_detector("mmd", reference, p_val=0.05, n_permutations=200, n_ref=500)
    rng = np.random.default_rng(2)
    p = [det.test(_rows(rng, 50))["p_val"] for _ in range(40)]
    assert min(p) >= 1 / 201
    assert 0.3 < float(np.mean(p)) < 0.7  # uniform under no drift: mean 0.5
    far = det.test(_rows(rng, 50, shift=3.0))
    assert far["p_val"] == pytest.approx(1 / 201) and far["is_drift"]
    # The vectorised statistic equals Alibi's unbiased MMD^2 on the same kernel matrix.
    from alibi_detect.utils.pytorch.distance import mmd2_from_kernel_matrix

    x = torch.randn(60, 3)
    k = torch.exp(-torch.cdist(x, x) ** 2)
    _, mmd2, _ = permutation_mmd2(k, 20, 10, torch.Generator().manual_seed(0))
    assert mmd2 == pytest.approx(mmd2_from_kernel_matrix(k.double(), 20).item(), rel=1e-6)


def test_mmd_standardizes_so_a_small_scale_feature_is_seen():
    """Without scaling the bandwidth follows the feature in the thousands and a shift in a 0-1 feature hides."""
    rng = np.random.default_rng(3)
    ref = np.c_[rng.normal(0, 1000, 1000), rng.uniform(0, 1, 1000)].astype(np.float32)
    det = make_detector("mmd", ref, p_val=0.01, n_permutations=300)
    win = np.c_[rng.normal(0, 1000, 100), rng.uniform(0.3, 1.3, 100)].astype(np.float32)
    assert det.test(win)["is_drift"]


def test_fdr_is_less_strict_than_bonferroni_on_many_small_p_values():
    p = np.array([0.012, 0.015, 0.02, 0.03, 0.9])
    assert corrected_drift(p, 0.05, "bonferroni") == (False, 0.01)
    assert corrected_drift(p, 0.05, "fdr") == (True, 0.05)


def test_unknown_names_and_options_list_the_valid_ones(reference):
    with pytest.raises(ConfigError) as exc:
        make_detector("magic", reference, 0.05)
    assert exc.value.key == "monitor.detector" and all(n in str(exc.value) for n in ("mmd", "cvm_online", "ks"))
    with pytest.raises(ConfigError, match="bonferroni, fdr"):
        make_detector("ks", reference, 0.05, correction="holm")
    with pytest.raises(ConfigError, match="n_permutations") as exc:
        make_detector("mmd", reference, 0.05, n_perms=10)
    assert exc.value.key == "monitor.options"
    # correction goes to per-feature detectors; multivariate ones make one decision and ignore it
    assert make_detector("mmd", reference, 0.05, correction="fdr", n_permutations=50).options.get("correction") is None
    assert {"ks", "cvm", "tabular", "scipy_ks", "mmd", "cvm_online"} <= set(DETECTORS)


def test_online_detector_alarms_on_a_shift_pickles_with_its_state_and_reuses_cached_thresholds(tmp_path):
    # ERT 500 over 2 features needs >= ~1,500 simulated streams; a small setting keeps the test fast.
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(500, 2)).astype(np.float32)
    opts = {"ert": 500, "n_bootstraps": 3000, "window_sizes": [20], "n_ref": 200, "cache_dir": str(tmp_path)}
    det = make_detector("cvm_online", ref, 0.05, **opts)
    assert list(tmp_path.glob("cvm_online-*.npy"))  # thresholds cached for the next build
    clean = [det.test(rng.normal(size=(100, 2)).astype(np.float32)) for _ in range(5)]
    assert sum(len(r["alarms"]) for r in clean) <= 3  # expected ~1 in 500 rows at ERT 500
    assert det.detector_.t > 0 and len(det.detector_.xs) <= 20  # memory stays bounded
    # state round-trips: the copy continues the same stream and alarms on the same row
    copy = pickle.loads(pickle.dumps(det))
    assert copy.detector_.t == det.detector_.t
    shifted = rng.normal(1.5, 1.0, size=(100, 2)).astype(np.float32)
    a, b = det.test(shifted), copy.test(shifted)
    assert a["is_drift"] and a["at_row"] == b["at_row"] and a["at_row"] < 40, a["alarms"]
    assert a["alarms"] == b["alarms"]
    # a rebuild for the same reference size reads the cached thresholds instead of simulating
    again = make_detector("cvm_online", rng.normal(size=(500, 2)).astype(np.float32), 0.05, **opts)
    assert np.array_equal(again.detector_.thresholds, det.detector_.thresholds, equal_nan=True)
    with pytest.raises(ConfigError, match="n_bootstraps"):
        make_detector("cvm_online", ref, 0.05, **{**opts, "ert": 100_000})


def test_cusum_threshold_gives_the_requested_run_length_between_false_alarms():
    p0 = 0.12
    h = cusum_threshold(p0, p0 + 0.05, 2000)
    up, down = np.log((p0 + 0.05) / p0), np.log((1 - p0 - 0.05) / (1 - p0))
    assert cusum_arl(p0, up, down, h) == pytest.approx(2000, rel=0.01)
    det = ErrorRateDetector(p0, shift=0.05, ert=2000)
    out = det.update(np.random.default_rng(5).random(200_000) < p0)
    assert 60 <= len(out["alarms"]) <= 160  # ~100 expected: run length 2000 over 200k rows


def test_label_detector_catches_flipped_labels_and_is_quiet_on_a_stationary_error_stream():
    rng = np.random.default_rng(6)
    det = ErrorRateDetector(0.1, shift=0.05, ert=20_000)
    quiet = det.update(rng.random(20_000) < 0.1)
    assert quiet["alarms"] == [] or len(quiet["alarms"]) <= 2  # expected 1 per 20k rows
    det.reset()
    # labels flip for 40% of rows: the error rate jumps from 10% to ~46%, caught within 50 rows
    errors = rng.random(2000) < 0.1
    errors[1000:] = rng.random(1000) < 0.46
    out = det.update(errors)
    assert out["is_drift"] and 1000 <= out["at_row"] < 1050, out["alarms"]
    # a batch at a time gives the same answer as row by row, and the state pickles
    det2 = ErrorRateDetector(0.1, shift=0.05, ert=20_000)
    first = det2.update(errors[:1020])
    det3 = pickle.loads(pickle.dumps(det2))
    rest = det3.update(errors[1020:])
    at = first["at_row"] if first["is_drift"] else 1020 + rest["at_row"]
    assert at == out["at_row"]
    with pytest.raises(ConfigError, match="0 or 1"):
        det.update(np.array([0, 2]))
    with pytest.raises(ConfigError, match="reference_error"):
        ErrorRateDetector(0.0)


@pytest.mark.parametrize("group", ["ks", "cvm", "tabular", "scipy", "mmd", "online"])
def test_monitor_configs_name_a_detector_and_options_it_takes(group):
    from tests.helpers import make_config

    cfg = make_config([f"monitor={group}"])
    cls = DETECTORS.get(cfg.monitor.detector)
    assert set(cfg.monitor.options) <= set(cls.OPTIONS), (group, cfg.monitor.options)
    with pytest.raises(ConfigCompositionException) as exc:  # an Enum of the schema
        make_config([f"monitor={group}", "monitor.correction=holm"])
    assert "full_key: monitor.correction" in str(exc.value.__cause__)


def test_warmup_pools_live_errors_into_a_noisy_reference_rate():
    """A reference rate measured 0.02 too low would alarm on clean traffic; pooling 3,000 live rows fixes it."""
    rng = np.random.default_rng(7)
    det = ErrorRateDetector(0.10, shift=0.05, ert=20_000, reference_rows=1000, warmup=3000)
    det.update(rng.random(3000) < 0.12)
    assert det.p0 == pytest.approx((0.10 * 1000 + det.errors_total) / 4000)
    assert 0.105 < det.p0 < 0.125
    with pytest.raises(ConfigError, match="reference_rows"):
        ErrorRateDetector(0.1, warmup=100)


def test_cvm_does_not_alarm_on_clean_integer_features():
    """Issue 15: scipy's asymptotic CVM p-value assumes no ties; on integer (count, code, 0/1)
    columns every clean window alarmed. Tied columns now get KS; a real shift is still caught."""
    rng = np.random.default_rng(11)

    def rows(n, lam=3.0):
        return np.c_[rng.normal(size=n), rng.poisson(lam, n), rng.integers(0, 5, n), rng.random(n) < 0.3].astype(np.float32)

    det = make_detector("cvm", rows(1000), p_val=0.05)
    assert det.detector_.tied_ == [1, 2, 3]
    clean = [det.test(rows(50)) for _ in range(40)]
    assert sum(r["is_drift"] for r in clean) <= 5, [min(r["p_vals"]) for r in clean]  # ~2 expected at 0.05
    assert det.test(rows(100, lam=6.0))["is_drift"]  # the count column's mean doubles


def test_tabular_takes_a_0_1_column_constant_in_reference_and_window():
    """Alibi's TabularDrift raised ValueError (a zero expected frequency) when a one-hot column held one
    value in both the reference and the window; that column now has p = 1 and the rest is tested."""
    rng = np.random.default_rng(12)
    ref = np.c_[rng.normal(size=(500, 2)), np.zeros(500), rng.random(500) < 0.3].astype(np.float32)
    det = make_detector("tabular", ref, 0.05, [2, 3])
    clean = det.test(np.c_[rng.normal(size=(50, 2)), np.zeros(50), rng.random(50) < 0.3].astype(np.float32))
    assert clean["p_vals"][2] == 1.0 and not clean["is_drift"]
    # a category absent from the window only is a real table: all zeros where the reference had 30% ones
    gone = det.test(np.c_[rng.normal(size=(200, 2)), np.zeros(200), np.zeros(200)].astype(np.float32))
    assert gone["is_drift"] and gone["p_vals"][3] < 1e-6
    moved = det.test(np.c_[rng.normal(1.0, 1.0, size=(100, 2)), np.zeros(100), rng.random(100) < 0.3].astype(np.float32))
    assert moved["is_drift"] and min(moved["p_vals"][:2]) < 1e-4
