"""Local baselines that send nothing to anyone: what a user gets from the public encoder alone (a linear
probe on its embedding, or its own classifier head where the labels are its classes).

Every results table shows them beside OWSD, so that what the cloud adds is read off, not assumed.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


def fit_linear_probe(embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> Pipeline:
    """Logistic regression on standardised embeddings (scikit-learn's defaults, up to 1,000 iterations).

    scikit-learn (with pandas, 0.8 s) is imported here, not with the module: the processes of a distributed
    precompute other than rank 0, and the commands that score no probe, never need it."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    with warnings.catch_warnings():  # an unconverged fit is still the baseline: score it as it is
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(embeddings.detach().cpu().numpy(), labels.detach().cpu().numpy())
    return pipeline


def linear_probe_accuracy(
    train_embeddings: torch.Tensor,
    train_labels: torch.Tensor,
    test_embeddings: torch.Tensor,
    test_labels: torch.Tensor,
    seed: int = 0,
) -> dict[str, float]:
    """Test top-1 and top-5 accuracy (top-k capped at the number of classes) of a linear probe."""
    probe = fit_linear_probe(train_embeddings, train_labels, seed)
    probabilities = probe.predict_proba(test_embeddings.detach().cpu().numpy())
    return top_k_accuracy(probe.classes_[np.argsort(-probabilities, axis=1)], test_labels)


def classifier_head_accuracy(
    head: nn.Module, embeddings: torch.Tensor, labels: torch.Tensor, head_classes: list[int]
) -> dict[str, float]:
    """Top-1/top-5 of the encoder's own classifier on its embeddings, ranked among `head_classes` only.

    Label i is `head_classes[i]`: a user who knows which of the encoder's classes their images belong to
    ranks only those, so the baseline is as strong as the IIN's task allows.
    """
    with torch.no_grad():
        scores = head(embeddings)[:, head_classes]
    ranked = scores.argsort(dim=1, descending=True).numpy()
    return top_k_accuracy(ranked, labels)


def top_k_accuracy(ranked: np.ndarray, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 (capped at the number of classes) from each row's classes, best first."""
    truth = labels.detach().cpu().numpy()[:, None]
    k = min(5, ranked.shape[1])
    return {"top1": float((ranked[:, 0:1] == truth).mean()), "top5": float((ranked[:, :k] == truth).any(1).mean())}
