"""Each threat model's curves order their three views as they must: a scrambler that hides nothing leaks as
much as the plaintext and far above chance; one that hides everything stays at chance, far below the
plaintext. A NaN, or a curve that returns the same value whatever it is shown, cannot pass both."""

import pytest
import torch

from owsd.attacks.common import pixel_features
from owsd.security.curves import Curve, Views, clustering_curves, label_leakage_curves
from owsd.security.known_pairs import Partition, inversion_curves

CLASSES, IMAGES, SIZE, PIXELS = 5, 300, 16, 8
WEAK, STRONG = "identity (hides nothing)", "noise (hides everything)"


@pytest.fixture(scope="module")
def private() -> dict[str, torch.Tensor]:
    """Images drawn around one template per label; embeddings a fixed linear map of their pixels."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(IMAGES) % CLASSES
    templates = torch.rand(CLASSES, 3, SIZE, SIZE, generator=g) * 255
    noise = torch.randn(IMAGES, 3, SIZE, SIZE, generator=g) * 20
    originals = (templates[labels] + noise).clamp(0, 255).to(torch.uint8)
    embeddings = pixel_features(originals, PIXELS) @ torch.randn(3 * PIXELS * PIXELS, 32, generator=g)
    return {"labels": labels, "originals": originals, "embeddings": embeddings}


def scrambled(private: dict[str, torch.Tensor], scrambler: str) -> torch.Tensor:
    if scrambler == WEAK:
        return private["originals"].clone()
    noise = torch.randint(0, 256, private["originals"].shape, generator=torch.Generator().manual_seed(1))
    return noise.to(torch.uint8)


def curves(private: dict[str, torch.Tensor], scrambler: str) -> dict[str, Curve]:
    pixels = pixel_features(scrambled(private, scrambler), PIXELS)
    views = Views(private["labels"], pixels, pixel_features(private["originals"], PIXELS))
    partition = Partition.draw(IMAGES, public=60, held_out=60, seed=0)
    found = clustering_curves(views, [IMAGES], CLASSES, seed=0) + label_leakage_curves(views, [5], seed=0)
    found += inversion_curves(pixels, private["embeddings"], private["labels"], partition, [150], seed=0)
    return {curve.key: curve for curve in found}


MEASURED = ["clustering (pixels)/nmi", "label leakage (pixels)/accuracy", "embedding inversion/identification"]


@pytest.mark.parametrize("attack", MEASURED)
def test_the_views_are_ordered_for_a_weak_and_a_strong_scrambler(private, attack):
    weak, strong = curves(private, WEAK)[attack], curves(private, STRONG)[attack]
    leaked, plain, chance = weak.scrambled[-1], weak.unscrambled[-1], weak.chance[-1]
    assert leaked > chance + 0.3 and leaked > 0.9 * plain, (leaked, plain, chance)
    hidden, plain, chance = strong.scrambled[-1], strong.unscrambled[-1], strong.chance[-1]
    assert abs(hidden - chance) < 0.1 and hidden < plain - 0.3, (hidden, plain, chance)
