import numpy as np
import pytest

from birram import metrics

R = np.array([
    [0.9, 0.1, 0.2],
    [0.6, 0.8, 0.3],
    [0.5, 0.7, 0.95],
])
B = np.array([0.5, 0.2, 0.1])


def test_average_accuracy_after_each_task():
    np.testing.assert_allclose(metrics.average_accuracy_after_each_task(R),
                               [0.9, 0.7, (0.5 + 0.7 + 0.95) / 3])


def test_bwt_fwt_forgetting_by_hand():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics.forward_transfer(R, B) == pytest.approx(((0.1 - 0.2) + (0.3 - 0.1)) / 2)
    # task 0: best before the end 0.9 -> 0.5; task 1: best 0.8 -> 0.7
    assert metrics.forgetting(R) == pytest.approx((0.4 + 0.1) / 2)


def test_summary_and_single_task():
    s = metrics.summarise(R, B)
    assert s.average_accuracy == pytest.approx(0.7166666, rel=1e-5)
    one = metrics.summarise(np.array([[0.8]]), np.array([0.1]))
    assert one.bwt == 0 and one.fwt == 0 and one.forgetting == 0


def test_bad_matrix_shape():
    with pytest.raises(ValueError, match="square"):
        metrics.summarise(np.zeros((2, 3)), np.zeros(2))


def test_confusion_and_per_class():
    pred = np.array([0, 1, 1, 2, 2, 2])
    true = np.array([0, 0, 1, 2, 2, 1])
    conf = metrics.confusion_matrix(pred, true, 4)
    assert conf[0, 0] == 1 and conf[0, 1] == 1 and conf[1, 2] == 1 and conf.sum() == 6
    acc = metrics.per_class_accuracy(pred, true, 4)
    np.testing.assert_allclose(acc[:3], [0.5, 0.5, 1.0])
    assert np.isnan(acc[3])


def test_mean_and_standard_error():
    mean, se = metrics.mean_and_standard_error([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / np.sqrt(3))
    assert np.isnan(metrics.mean_and_standard_error([1.0])[1])
