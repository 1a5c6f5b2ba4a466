import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from birram.data.protocols import permutations, permuted_protocol, split_protocol
from birram.errors import ConfigError
from tests.conftest import blobs, tiny_images


def test_split_partitions_classes_into_tasks():
    data = blobs(n_classes=6)
    p = split_protocol(data, "class", 3)
    assert [t.outputs for t in p.tasks] == [(0, 1), (2, 3), (4, 5)]
    seen = torch.cat([t.y_train for t in p.tasks])
    assert sorted(seen.unique().tolist()) == list(range(6))
    assert sum(t.x_train.shape[0] for t in p.tasks) == data.x_train.shape[0]
    for t in p.tasks:
        assert set(t.y_train.unique().tolist()) == set(t.outputs)


def test_class_order_relabels_and_names_follow():
    data = blobs(n_classes=4)
    p = split_protocol(data, "class", 2, class_order=[3, 2, 1, 0])
    first = p.tasks[0]
    # original class 3 becomes output 0
    x3 = data.x_train[data.y_train == 3]
    assert torch.equal(first.x_train[first.y_train == 0], x3)
    assert first.class_names == ("c3", "c2")


def test_active_outputs_per_scenario():
    data = blobs(n_classes=6)
    cls = split_protocol(data, "class", 3)
    assert cls.train_mask(0).tolist() == [True, True, False, False, False, False]
    assert cls.train_mask(2).all()
    assert cls.eval_mask(1, 0).tolist() == [True] * 4 + [False] * 2
    task = split_protocol(data, "task", 3)
    assert task.train_mask(1).tolist() == [False, False, True, True, False, False]
    assert task.eval_mask(2, 0).tolist() == task.train_mask(0).tolist()
    dom = split_protocol(data, "domain", 3)
    assert dom.n_outputs == 2
    assert dom.train_mask(0).all() and dom.train_mask(2).all()
    assert set(dom.tasks[2].y_train.unique().tolist()) == {0, 1}


def test_images_are_scaled_to_unit_interval():
    p = split_protocol(tiny_images(), "class", 2)
    x = p.tasks[0].x_train
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1


@given(n_tasks=st.integers(1, 5), n_features=st.integers(2, 50), seed=st.integers(0, 10**6))
@settings(max_examples=30, deadline=None)
def test_permutations_are_bijections(n_tasks, n_features, seed):
    perms = permutations(n_tasks, n_features, seed)
    assert len(perms) == n_tasks
    assert torch.equal(perms[0], torch.arange(n_features))
    for perm in perms:
        assert torch.equal(perm.sort().values, torch.arange(n_features))


def test_permuted_protocol_labels_and_pixels():
    data = blobs(n_classes=3, dim=5)
    p = permuted_protocol(data, "class", 3, seed=1)
    assert p.n_outputs == 9
    assert p.tasks[2].outputs == (6, 7, 8)
    # the same sample's features are a permutation of the original ones
    assert torch.allclose(p.tasks[1].x_train[0].sort().values, data.x_train[0].sort().values)
    d = permuted_protocol(data, "domain", 3, seed=1)
    assert d.n_outputs == 3 and torch.equal(d.tasks[2].y_train, data.y_train)


@pytest.mark.parametrize("kwargs, message", [
    ({"scenario": "incremental", "n_tasks": 2}, "unknown scenario"),
    ({"scenario": "class", "n_tasks": 3}, "must divide"),
    ({"scenario": "class", "n_tasks": 2, "class_order": [0, 0, 1, 2]}, "permutation"),
])
def test_bad_protocol_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        split_protocol(blobs(n_classes=4), **kwargs)


def test_seeded_class_order_follows_numpy_permutation_per_seed():
    from birram.data.registry import seeded_class_order

    order = seeded_class_order(10, 1)
    permutation = np.random.RandomState(1).permutation(10)
    # class c gets label permutation[c]; the order lists classes by their new label
    assert [int(permutation[c]) for c in order] == list(range(10))
    assert seeded_class_order(10, 1) == order and seeded_class_order(10, 2) != order
