"""Clustering metrics: Hungarian-matched accuracy, NMI and ARI, and the many-to-one accuracies
used when there are more clusters than classes."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, confusion_matrix, normalized_mutual_info_score


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predicted labels")
    return y_true, y_pred


def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy under the best one-to-one map from clusters to classes (Hungarian algorithm)."""
    y_true, y_pred = _labels(y_true, y_pred)
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    counts = confusion_matrix(pred_idx, true_idx)  # rows: clusters, columns: classes
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def majority_label_accuracy(y_true, y_pred) -> float:
    """Accuracy when every cluster is given the most common true label among its members
    (many clusters may share a label: the usual score when K exceeds the number of classes)."""
    y_true, y_pred = _labels(y_true, y_pred)
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    counts = confusion_matrix(pred_idx, true_idx)
    return float(counts.max(1).sum() / len(y_true))


def most_probable_point_accuracy(y_true, proba) -> float:
    """Accuracy when every cluster k is given the label of the one point that maximises its
    probability ``proba[:, k]`` (the adversarial-autoencoder protocol that the Dilokthanakul
    GMVAE paper's code uses); points go to their most probable cluster. Labels only one
    point per cluster, so it is noisier than :func:`majority_label_accuracy`."""
    proba = np.asarray(proba)
    if proba.ndim != 2:
        raise ValueError(f"proba must be (N, K), got shape {proba.shape}")
    y_true, clusters = _labels(y_true, proba.argmax(1))
    label_of_cluster = y_true[proba.argmax(0)]
    return float((label_of_cluster[clusters] == y_true).mean())


def clustering_scores(y_true, y_pred) -> dict[str, float]:
    """ACC, NMI and ARI of a clustering against reference labels."""
    y_true, y_pred = _labels(y_true, y_pred)
    return {
        "acc": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }
