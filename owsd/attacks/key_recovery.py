"""T3 key recovery: fit the public generator architecture's weights to known (embedding, scrambled) pairs.

The generator's weights are the key. An adversary with N originals computes their embeddings with the
public encoder and regresses the scrambled images on them through the public architecture. If the fit
generalises, it scrambles new embeddings like the key does, and inverting it turns any scrambled image
back into an embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_CHUNK = 50  # images per forward pass when scoring: bounds memory at 256×256


def trainable(module: nn.Module) -> nn.Module:
    """`module`, in place, with gradients on and in train mode (ScramblingGenerator freezes itself)."""
    return module.requires_grad_(True).train()


def _targets(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → the generator's float range [-1, 1]; done per batch, as 5,000 float images do not fit."""
    return pixels.float() / 127.5 - 1


def recover_generator(
    architecture: Callable[[], nn.Module],
    embeddings: torch.Tensor,
    pixels: torch.Tensor,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """A fresh `architecture()` fitted (Adam, MSE) to map `embeddings` N×E to `pixels` N×3×S×S; returned frozen.

    `seed` fixes the initialisation (when the architecture draws from torch's RNG) and the batch order;
    the caller's global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = architecture()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            for index in torch.randperm(len(embeddings)).split(batch_size):
                loss = F.mse_loss(model(embeddings[index].float()), _targets(pixels[index]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return model.requires_grad_(False).eval()


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of the per-row standardised vectors."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return F.cosine_similarity(a, b, dim=1)


def _invert(model: nn.Module, targets: torch.Tensor, dim: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Embeddings z minimising MSE(model(z), targets), one free row per image (Adam adapts each row on its own)."""
    # Small noise, not zeros: ScramblingGenerator standardises z, whose gradient is undefined at a constant row.
    z = (0.01 * torch.randn(len(targets), dim, generator=generator)).requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        loss = F.mse_loss(model(z), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return z.detach()


def generator_fit_scores(
    fitted: nn.Module,
    test_embeddings: torch.Tensor,
    test_pixels: torch.Tensor,
    invert_steps: int = 200,
    seed: int = 0,
    invert_images: int | None = None,
) -> dict[str, float]:
    """How well a fitted generator stands in for the key on held-out pairs.

    "pixel_r2" is 1 − MSE / per-pixel variance of the targets: the share of the scrambled images' variation
    the fit predicts (the mean image scores 0, chance ≤ 0). "embedding_cosine" is the mean correlation
    (cosine after per-row standardisation, as ScramblingGenerator sees its input) between the true test
    embeddings and those recovered by inverting `fitted` on the first `invert_images` test images (all when
    None) by gradient descent. `fitted` is frozen in place. Cost: one pass per test image plus
    invert_images × invert_steps passes forward and back.
    """
    inverted = len(test_embeddings) if invert_images is None else min(invert_images, len(test_embeddings))
    fitted = fitted.requires_grad_(False).eval()
    generator = torch.Generator().manual_seed(seed)
    squared_error = total = total_squared = 0.0
    correlations = []
    for start in range(0, len(test_embeddings), _CHUNK):
        embeddings = test_embeddings[start : start + _CHUNK].float()
        images = _targets(test_pixels[start : start + _CHUNK])
        targets = images.flatten(1).double()
        with torch.no_grad():
            squared_error += (fitted(embeddings).flatten(1).double() - targets).square().sum(0)
        total += targets.sum(0)
        total_squared += targets.square().sum(0)
        invert = max(0, min(len(embeddings), inverted - start))
        if invert:
            recovered = _invert(fitted, images[:invert], embeddings.shape[1], invert_steps, generator)
            correlations.append(_pearson(recovered, embeddings[:invert]))
    n = len(test_embeddings)
    variance = (total_squared - total.square() / n).sum()
    return {
        "pixel_r2": (1 - squared_error.sum() / variance).item(),
        "embedding_cosine": torch.cat(correlations).mean().item(),
    }


def mean_embedding_scores(train_embeddings: torch.Tensor, test_embeddings: torch.Tensor) -> dict[str, float]:
    """The scores of an adversary who knows nothing but averages: the mean image (pixel R² 0 by definition)
    and the mean known embedding as its guess of every held-out one. The chance level of key recovery."""
    guess = train_embeddings.float().mean(0, keepdim=True).expand_as(test_embeddings)
    return {"pixel_r2": 0.0, "embedding_cosine": _pearson(guess, test_embeddings.float()).mean().item()}
