"""T3 embedding inversion: learn scrambled image → public embedding from known (original, scrambled) pairs.

The encoder is public, so an adversary holding N originals of a key also holds their embeddings. If a
regression from the scrambled images back to those embeddings generalises, every other scrambled image
of that key gives its embedding away, and with it whatever a public probe can read from an embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge, RidgeCV

from owsd.attacks.common import as_numpy, reduce
from owsd.baselines import fit_linear_probe

# Components of standardised features have variances from ~D down to ~0: the grid spans no to total shrinkage.
_ALPHAS = np.logspace(-3, 5, 9)


def invert_embeddings(
    train_features: torch.Tensor,
    train_embeddings: torch.Tensor,
    test_features: torch.Tensor,
    dims: int = 256,
    alpha: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Recovered test embeddings (float32 N_test×E): ridge regression on the top `dims` PCA components.

    The PCA is fitted on the known pairs only; `alpha=None` picks the shrinkage by efficient leave-one-out
    cross-validation, so that at chance the regression falls back to the mean train embedding instead of
    overfitting noise.
    """
    train, test = reduce(as_numpy(train_features), as_numpy(test_features), dims=dims, seed=seed)
    model = Ridge(alpha=alpha) if alpha is not None else RidgeCV(alphas=_ALPHAS)
    model.fit(train, as_numpy(train_embeddings))
    return torch.from_numpy(model.predict(test).astype(np.float32))


def inversion_scores(
    recovered: torch.Tensor,
    true: torch.Tensor,
    probe: Callable[[torch.Tensor], torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """How close the recovered embeddings are to the true ones, and what they give away.

    "cosine" is the plain mean cosine of each recovered row with its true row. Embeddings of a ReLU
    backbone are non-negative, so even the mean embedding scores high: compare it with the cosine that the
    mean train embedding scores (the caller has it), not with 0. "identification" is the top-1 rate at which
    recovered row i is closest (cosine) to true row i among all true test rows (chance 1/N). With a probe and
    labels, "probe_accuracy" is the accuracy of `probe(recovered)`, which returns N×C scores or N class ids.
    """
    recovered, true = recovered.float(), true.float()
    scores = {"cosine": F.cosine_similarity(recovered, true, dim=1).mean().item()}
    similarity = F.normalize(recovered, dim=1) @ F.normalize(true, dim=1).T
    scores["identification"] = (similarity.argmax(1) == torch.arange(len(true))).float().mean().item()
    if probe is not None and labels is not None:
        predicted = torch.as_tensor(probe(recovered))
        if predicted.ndim == 2:
            predicted = predicted.argmax(1)
        scores["probe_accuracy"] = (predicted.cpu() == labels.cpu()).float().mean().item()
    return scores


def train_probe(
    embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A linear probe fitted on public (embedding, label) data: embeddings N×E → class ids N (int64)."""
    pipeline = fit_linear_probe(embeddings, labels, seed)

    def probe(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(pipeline.predict(as_numpy(x)).astype(np.int64))

    return probe
