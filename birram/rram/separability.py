"""How much neighbouring compliance levels overlap in each switching feature.

The overlap coefficient of two samples is the area their distributions share: the sum over
common histogram bins of the smaller of the two bin fractions. 0 means no value of one sample
falls where the other has any, 1 means identical histograms. It is computed per feature, so a
learner that combines the features can separate levels better than any single feature does.
"""

from __future__ import annotations

import numpy as np

BINS = 30


def overlap_coefficient(a: np.ndarray, b: np.ndarray, bins: int = BINS) -> float:
    """Shared histogram area of samples ``a`` and ``b`` (1-D, finite) on common bins.

    The bins span the 1st to 99th percentile of both samples together, with values beyond
    clipped into the end bins, so a few extreme cycles do not squeeze the rest into one bin.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("overlap needs two non-empty samples")
    both = np.concatenate([a, b])
    low, high = np.percentile(both, [1, 99])
    if not high > low:  # (nearly) one value everywhere: overlapping iff both sit there
        low, high = both.min(), both.max()
        if not high > low:
            return 1.0
    edges = np.linspace(low, high, bins + 1)
    pa = np.histogram(np.clip(a, low, high), edges)[0] / a.size
    pb = np.histogram(np.clip(b, low, high), edges)[0] / b.size
    return float(np.minimum(pa, pb).sum())


def neighbour_overlaps(features: np.ndarray, labels: np.ndarray, n_levels: int) -> np.ndarray:
    """``O[k, f]``: overlap of feature ``f`` between levels ``k`` and ``k + 1``."""
    out = np.empty((n_levels - 1, features.shape[1]))
    for k in range(n_levels - 1):
        lo, hi = features[labels == k], features[labels == k + 1]
        for f in range(features.shape[1]):
            out[k, f] = overlap_coefficient(lo[:, f], hi[:, f])
    return out


def neighbour_confusion(confusion: np.ndarray) -> np.ndarray:
    """``c[k]``: share of test samples of levels ``k`` and ``k + 1`` that a classifier gave the
    other of the two (the mean of both directions), from ``confusion[true, predicted]``."""
    totals = confusion.sum(1).astype(float)
    share = np.divide(confusion, totals[:, None], out=np.zeros(confusion.shape),
                      where=totals[:, None] > 0)
    k = np.arange(confusion.shape[0] - 1)
    return (share[k, k + 1] + share[k + 1, k]) / 2
