"""Seeded, stratified train/test split for datasets that ship as one pool."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)``, each sorted, with ``test_fraction`` of every class in test.

    Per class, ``round(n_c * test_fraction)`` samples go to test, chosen by a
    ``numpy.random.Generator`` seeded with ``seed``: same seed, same split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    # Shuffle, then stable-sort by label: each class becomes a contiguous, shuffled run.
    order = rng.permutation(labels.size)
    order = order[np.argsort(labels[order], kind="stable")]
    classes, counts = np.unique(labels, return_counts=True)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank_in_class = np.arange(labels.size) - starts
    n_test = np.repeat(np.rint(counts * test_fraction).astype(np.int64), counts)
    is_test = rank_in_class < n_test
    return np.sort(order[~is_test]), np.sort(order[is_test])
