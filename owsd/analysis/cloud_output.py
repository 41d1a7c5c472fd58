"""How the cloud's answers to scrambled images compare with its answers to the plain ones (paper §5.2).

If scrambling hides the label, the cloud's favourite labels for a scrambled image should rarely be those
it picks for the plain image, it should give those labels little confidence, and its answers should be
less certain (higher entropy).
"""

from __future__ import annotations

import torch
from torch import nn

_EPS = 1e-12


def _check_pair(plain: torch.Tensor, scrambled: torch.Tensor, k: int) -> None:
    if plain.ndim != 2 or plain.shape != scrambled.shape:
        raise ValueError(f"expected two N×C tensors of one shape, got {list(plain.shape)}, {list(scrambled.shape)}")
    if not 1 <= k <= plain.shape[1]:
        raise ValueError(f"k must lie in [1, {plain.shape[1]}], got {k}")


def top_k_intersection(plain: torch.Tensor, scrambled: torch.Tensor, k: int) -> float:
    """Mean over images of |top-k(plain) ∩ top-k(scrambled)| / k: 1 means the cloud ranks both alike."""
    _check_pair(plain, scrambled, k)
    top_plain = plain.topk(k, dim=1).indices
    top_scrambled = scrambled.topk(k, dim=1).indices
    shared = (top_plain[:, :, None] == top_scrambled[:, None, :]).any(dim=2).sum(dim=1)
    return (shared.double() / k).mean().item()


def confidence_drop(plain: torch.Tensor, scrambled: torch.Tensor, k: int) -> float:
    """Mean relative loss of the mass the cloud puts on the plain image's top-k labels once it is scrambled.

    0 means the scrambled image keeps all that confidence, 1 that it keeps none (negative: it gains some).
    """
    _check_pair(plain, scrambled, k)
    top_plain = plain.topk(k, dim=1).indices
    mass_plain = plain.double().gather(1, top_plain).sum(dim=1)
    mass_scrambled = scrambled.double().gather(1, top_plain).sum(dim=1)
    return (1 - mass_scrambled / mass_plain.clamp_min(_EPS)).mean().item()


def mean_entropy(probabilities: torch.Tensor) -> float:
    """Mean Shannon entropy (nats) of N×C probability vectors; a zero probability contributes 0."""
    p = probabilities.double()
    return -(p * p.clamp_min(_EPS).log()).sum(dim=1).mean().item()


def majority_answer_share(probabilities: torch.Tensor) -> float:
    """Share of images whose top-1 is the cloud's most frequent top-1: near 1/C when its answers follow the images
    (balanced labels), 1 when it gives every image the same label, which then tells the IIN nothing."""
    if probabilities.ndim != 2 or len(probabilities) == 0:
        raise ValueError(f"expected N×C probabilities with N ≥ 1, got {list(probabilities.shape)}")
    return torch.bincount(probabilities.argmax(1)).max().item() / len(probabilities)


def relu_zero_fraction(generator: nn.Module, embeddings: torch.Tensor, batch_size: int = 32) -> float:
    """Share of all outputs of the generator's nn.ReLU layers that are exactly 0 on `embeddings`.

    Dead units carry no information about the input, so this bounds how much of the embedding survives.
    """
    relus = [m for m in generator.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the generator has no nn.ReLU layer")
    counts = [0, 0]  # zeros, total

    def count(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        counts[0] += int((output == 0).sum())
        counts[1] += output.numel()

    handles = [relu.register_forward_hook(count) for relu in relus]
    try:
        with torch.inference_mode():
            for batch in embeddings.split(batch_size):
                generator(batch)
    finally:
        for handle in handles:
            handle.remove()
    if counts[1] == 0:
        raise ValueError("no embeddings were given")
    return counts[0] / counts[1]


def cloud_output_summary(plain: torch.Tensor, scrambled: torch.Tensor) -> dict[str, float]:
    """The paper's Table 5 statistics, both mean entropies (k capped at the number of labels) and both shares of
    the cloud's most frequent answer."""
    k1, k5 = min(1, plain.shape[1]), min(5, plain.shape[1])
    return {
        "top1_intersection": top_k_intersection(plain, scrambled, k1),
        "top5_intersection": top_k_intersection(plain, scrambled, k5),
        "top1_confidence_drop": confidence_drop(plain, scrambled, k1),
        "top5_confidence_drop": confidence_drop(plain, scrambled, k5),
        "entropy_plain": mean_entropy(plain),
        "entropy_scrambled": mean_entropy(scrambled),
        "majority_answer_share_plain": majority_answer_share(plain),
        "majority_answer_share_scrambled": majority_answer_share(scrambled),
    }
