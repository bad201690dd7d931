import numpy as np
import pytest

from pyro_gmvae.metrics import cluster_accuracy, clustering_scores


def test_accuracy_is_invariant_to_relabelling():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0


def test_accuracy_uses_a_one_to_one_map():
    y = np.array([0, 0, 0, 1, 1, 1])
    # one cluster holding everything can match only one class
    assert cluster_accuracy(y, np.zeros(6, dtype=int)) == 0.5
    assert cluster_accuracy(y, np.array([5, 5, 7, 7, 7, 7])) == pytest.approx(5 / 6)


def test_more_clusters_than_classes():
    y = np.array([0, 0, 1, 1])
    assert cluster_accuracy(y, np.array([0, 1, 2, 3])) == 0.5


def test_scores():
    y = np.array([0, 0, 1, 1, 2, 2])
    s = clustering_scores(y, np.array([1, 1, 0, 0, 2, 2]))
    assert s == {"acc": 1.0, "nmi": pytest.approx(1.0), "ari": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="true labels"):
        clustering_scores(y, y[:3])
