"""T2: with `per_class` labelled scrambled images per class, how well does the adversary label all the others?

The adversary holds every scrambled image of the key (unlabelled), so its feature reduction is fitted on all of
them (transductive); only the classifier is restricted to the few labelled ones.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from owsd.attacks.common import as_numpy, reduce


def few_label_accuracy(
    features: torch.Tensor, labels: torch.Tensor, per_class: int, dims: int = 50, seed: int = 0
) -> dict[str, float]:
    """Logistic regression on `per_class` random examples of each class; returns {"accuracy"} on all the rest."""
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    truth = as_numpy(labels)
    rng = np.random.default_rng(seed)
    known = np.zeros(len(truth), dtype=bool)
    for label in np.unique(truth):
        members = np.flatnonzero(truth == label)
        if len(members) <= per_class:
            raise ValueError(
                f"class {label} has {len(members)} examples: it needs more than per_class={per_class} "
                "to leave some to evaluate on"
            )
        known[rng.choice(members, per_class, replace=False)] = True
    (x,) = reduce(as_numpy(features).astype("float64"), dims=dims, seed=seed)
    with warnings.catch_warnings():  # an unconverged fit is still the adversary's classifier: score it as it is
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = LogisticRegression(C=1.0, max_iter=1000).fit(x[known], truth[known])
    return {"accuracy": float((classifier.predict(x[~known]) == truth[~known]).mean())}
