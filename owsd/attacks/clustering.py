"""T1, ciphertext only: do the scrambled images (or the cloud's answers) fall into clusters that are the classes?

Without a single label the adversary can still group what it receives; if its groups agree with the true
classes, the scrambling leaks the class structure. Agreement is measured against the labels only we know.
"""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from owsd.attacks.common import as_numpy, reduce

_LOG_FLOOR = 1e-6


def log_probabilities(p: torch.Tensor) -> torch.Tensor:
    """Cloud probability vectors → log(p + 1e-6): the small probabilities carry the structure, not the top one."""
    return torch.log(p.float().clamp_min(0) + _LOG_FLOOR)


def cluster_agreement(
    features: torch.Tensor, labels: torch.Tensor, n_clusters: int, dims: int = 50, seed: int = 0
) -> dict[str, float]:
    """KMeans on standardised, PCA-reduced `features` (N×D); returns {"nmi", "ari"} of its clusters vs `labels`.

    NMI and ARI are 0 for clusters unrelated to the classes and 1 when they are the classes.
    """
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    (x,) = reduce(as_numpy(features).astype("float64"), dims=dims, seed=seed)
    clusters = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(x)
    truth = as_numpy(labels)
    return {
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "ari": float(adjusted_rand_score(truth, clusters)),
    }
