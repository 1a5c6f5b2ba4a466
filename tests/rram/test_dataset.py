"""The compliance-level dataset: determinism, caching, splits, and the physics it rests on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from birram.errors import ConfigError
from birram.rram import dataset as ds
from birram.rram.cycling import SweepConfig, run_cycles
from birram.rram.dataset import RRAMDatasetConfig, load_rram_dataset, load_rram_samples
from birram.rram.params import ALOX, FILAMENT
from birram.rram.plots import power_law_exponent
from birram.rram.variability import Variability


@pytest.fixture(scope="module")
def small_cfg() -> RRAMDatasetConfig:
    return RRAMDatasetConfig.small()


@pytest.fixture(scope="module")
def samples(small_cfg, tmp_path_factory):
    return load_rram_samples(small_cfg, tmp_path_factory.mktemp("cache"))


def test_views_have_the_documented_shapes(small_cfg, samples, tmp_path):
    for view, width in (("features", 5), ("trace", small_cfg.trace_points)):
        data = ds.to_array_dataset(samples, view)
        assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
        assert data.x_train.shape[1] == width
        n_train = small_cfg.n_levels * small_cfg.n_train_devices * small_cfg.cycles
        assert data.x_train.shape[0] == n_train
        assert data.class_names == ("10uA", "46.4uA", "215uA", "1mA")
        assert set(data.y_train.tolist()) == set(range(small_cfg.n_levels))
        # standardised with train statistics: train columns have mean 0, std 1 (or constant)
        assert torch.allclose(data.x_train.mean(0), torch.zeros(width), atol=1e-4)


def test_test_devices_never_appear_in_training(samples):
    train_ids = set(samples.device_ids[samples.train].tolist())
    test_ids = set(samples.device_ids[~samples.train].tolist())
    assert train_ids and test_ids and not train_ids & test_ids


def test_same_seed_same_data_and_cache_round_trip(small_cfg, samples, tmp_path):
    tiny = RRAMDatasetConfig.small(n_levels=2, n_train_devices=3, n_test_devices=1, cycles=1)
    a, b = ds.generate_rram_samples(tiny), ds.generate_rram_samples(tiny)
    assert np.array_equal(a.features, b.features) and np.array_equal(a.traces, b.traces)
    other = ds.generate_rram_samples(RRAMDatasetConfig.small(n_levels=2, n_train_devices=3,
                                                             n_test_devices=1, cycles=1, seed=1))
    assert not np.array_equal(other.features, a.features)
    first = load_rram_dataset(tiny, "features", tmp_path)
    files = list(tmp_path.glob("rram-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    cached = load_rram_dataset(tiny, "features", tmp_path)
    assert torch.equal(first.x_train, cached.x_train)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BIRRAM_CACHE", str(tmp_path))
    assert ds.default_cache_dir() == tmp_path


def test_config_key_changes_with_any_field():
    a = RRAMDatasetConfig()
    assert a.key() == RRAMDatasetConfig().key()
    assert a.key() != RRAMDatasetConfig(cycles=a.cycles + 1).key()
    assert a.key() != RRAMDatasetConfig(variability_scale=a.variability_scale + 0.5).key()


def test_r_lrs_follows_compliance_as_a_power_law(samples):
    r_lrs = np.exp(samples.features[:, 0])
    icc = samples.levels_a[samples.labels]
    slope = power_law_exponent(icc, r_lrs)
    assert -1.3 < slope < -0.8
    # the universal relation: R_LRS * I_CC is a few tenths of a volt at every level
    v_c = np.array([np.median(r_lrs[samples.labels == k]) * samples.levels_a[k]
                    for k in range(len(samples.levels_a))])
    assert np.all((v_c > 0.1) & (v_c < 1.0))


def test_v_set_is_the_gap_closure_not_the_compliance_point(samples):
    # the gap closes at about the same voltage at every level
    v_set = samples.features[:, 2]
    per_level = [np.median(v_set[samples.labels == k]) for k in range(len(samples.levels_a))]
    assert max(per_level) - min(per_level) < 0.05
    assert 0.3 < np.median(v_set) < 1.5


def test_gap_only_model_saturates_where_the_filament_model_does_not():
    icc = torch.tensor([1e-5, 1e-4, 1e-3], dtype=torch.float64)
    none = Variability.none()
    gap_only = run_cycles(ALOX, icc, 3, 1, variability=none,
                          sweep=SweepConfig(v_set_max=5.0, v_reset_max=2.0)).features
    filament = run_cycles(FILAMENT, icc, 3, 1, variability=none).features
    r_gap = gap_only["r_lrs_ohm"][0]
    r_fil = filament["r_lrs_ohm"][0]
    assert float(r_gap[2] / r_gap[1]) > 0.9  # stuck at the smallest gap
    assert float(r_fil[2] / r_fil[1]) < 0.2  # keeps falling about tenfold per decade


@pytest.mark.parametrize("change", [{"n_levels": 1}, {"icc_min_a": -1e-6},
                                    {"icc_max_a": 1e-6}, {"params": "nope"},
                                    {"variability_scale": float("nan")}])
def test_bad_dataset_config_is_refused(change):
    with pytest.raises(ConfigError):
        RRAMDatasetConfig(**change)


def test_bad_view_is_refused(samples):
    with pytest.raises(ConfigError, match="view"):
        ds.to_array_dataset(samples, "pixels")  # type: ignore[arg-type]


def test_labels_are_balanced_in_both_splits(small_cfg, samples):
    data = ds.to_array_dataset(samples, "features")
    for labels, devices in ((data.y_train, small_cfg.n_train_devices),
                            (data.y_test, small_cfg.n_test_devices)):
        counts = torch.bincount(labels, minlength=small_cfg.n_levels)
        assert counts.tolist() == [devices * small_cfg.cycles] * small_cfg.n_levels
