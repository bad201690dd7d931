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


def test_many_to_one_accuracies_by_hand():
    from pyro_gmvae.metrics import majority_label_accuracy, most_probable_point_accuracy

    y = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    clusters = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # four clusters for three classes
    # majority labels: 0 -> 0 (2), 1 -> 0 or 1 (1), 2 -> 1 (2), 3 -> 1 or 2 (1): 6 of 8
    assert majority_label_accuracy(y, clusters) == 6 / 8
    assert cluster_accuracy(y, clusters) == 5 / 8  # one-to-one: a class is left for one cluster
    proba = np.full((8, 4), 0.01)
    proba[np.arange(8), clusters] = 0.9
    proba[7, 3] = 0.97  # cluster 3's most probable point is the class-2 one
    # labels from each cluster's top point: 0 -> 0, 1 -> 0 (point 2: first of the tie), 2 -> 1,
    # 3 -> 2: points 0, 1, 2, 4, 5, 7 are right
    assert most_probable_point_accuracy(y, proba) == 6 / 8
    proba[7, 0] = 0.95  # point 7 stays in cluster 3 but is now cluster 0's top point: 0 -> 2
    assert most_probable_point_accuracy(y, proba) == 4 / 8  # points 0 and 1 become wrong
    assert majority_label_accuracy(y, y) == 1.0
