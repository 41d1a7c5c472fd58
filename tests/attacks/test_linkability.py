import math

import torch

from owsd.attacks.common import pixel_features
from owsd.attacks.linkability import CHANGES, match_rate
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key

SAMPLES = 300


def scrambled(key: Key, embeddings: torch.Tensor) -> torch.Tensor:
    generator = ScramblingGenerator(key, embeddings.shape[1], image_size=16, base_channels=8)
    return pixel_features(generator.scramble(embeddings).pixels, 16)


def test_noisy_copies_of_the_same_features_are_linked():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(SAMPLES, 64, generator=g)
    assert match_rate(a, a + 0.1 * torch.randn(SAMPLES, 64, generator=g))["match_rate"] > 0.95


def test_independent_features_match_at_the_false_match_rate():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, SAMPLES, 64, generator=g)
    assert match_rate(a, b, false_match_rate=0.01)["match_rate"] < 0.05


def test_one_key_links_an_embedding_to_its_perturbed_version_and_two_keys_do_not():
    g = torch.Generator().manual_seed(2)
    embeddings = torch.rand(SAMPLES, 16, generator=g) ** 2  # non-negative, like a ReLU backbone's
    perturbed = embeddings + 0.05 * torch.randn(SAMPLES, 16, generator=g)
    first, second = Key(b"a" * 32), Key(b"b" * 32)
    same_key = match_rate(scrambled(first, embeddings), scrambled(first, perturbed))
    two_keys = match_rate(scrambled(first, embeddings), scrambled(second, perturbed))
    assert same_key["match_rate"] > 0.95
    assert two_keys["match_rate"] < 0.05


def smooth_images() -> torch.Tensor:
    """Two 64×64 RGB images of slow gradients and waves: natural-image-like, no noise for JPEG to mangle."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    channels = [x, y, 0.5 + 0.5 * torch.sin(2 * math.pi * (x + y))]
    image = torch.stack(channels) * 255
    return torch.stack([image, image.flip(-1)]).round().to(torch.uint8)


def test_changes_keep_shape_and_dtype_and_same_is_the_identity():
    images = smooth_images()
    for change in CHANGES.values():
        changed = change(images)
        assert changed.shape == images.shape and changed.dtype == torch.uint8
    assert torch.equal(CHANGES["same"](images), images)


def test_changes_alter_the_pixels_slightly_and_deterministically():
    images = smooth_images()
    for name in ("crop", "jpeg", "resize"):
        changed = CHANGES[name](images)
        difference = (changed.float() - images.float()).abs().mean()
        assert 0 < difference < 20, name
        assert torch.equal(CHANGES[name](images), changed), name
