import pytest
import torch

from owsd.components.generator import ScrambledImages, ScramblingGenerator
from owsd.components.key import Key

EMBEDDING_DIM = 64


@pytest.fixture(scope="module")
def embeddings() -> torch.Tensor:
    # Non-negative, pooled-feature-like embeddings, as a ReLU backbone produces.
    return torch.rand(12, EMBEDDING_DIM, generator=torch.Generator().manual_seed(1)) ** 2


def make(key: Key, size: int = 64) -> ScramblingGenerator:
    return ScramblingGenerator(key, EMBEDDING_DIM, image_size=size, base_channels=64)


def test_output_is_uint8_rgb_of_the_configured_size(embeddings):
    for size in (32, 64, 256):
        images = make(Key(b"k" * 32), size).scramble(embeddings[:2])
        assert isinstance(images, ScrambledImages)
        assert images.pixels.dtype == torch.uint8 and images.pixels.shape == (2, 3, size, size)


def test_same_key_gives_identical_bytes_and_another_key_different(embeddings):
    key = Key.generate()
    first = make(key).scramble(embeddings).pixels
    torch.manual_seed(123)  # torch's global RNG plays no part in the weights
    again = make(Key(key._secret)).scramble(embeddings).pixels
    other = make(Key.generate()).scramble(embeddings).pixels
    assert torch.equal(first, again)
    assert (first != other).float().mean() > 0.9


def test_an_image_scrambles_the_same_whatever_its_batch(embeddings):
    generator = make(Key.generate())
    whole = generator.scramble(embeddings).pixels
    alone = torch.cat([generator.scramble(embeddings[i : i + 1]).pixels for i in range(len(embeddings))])
    shuffled = generator.scramble(embeddings.flip(0)).pixels.flip(0)
    assert torch.equal(whole, alone) and torch.equal(whole, shuffled)


@pytest.mark.parametrize("key_byte", [b"a", b"b", b"c"])  # fixed keys: a random one saturated 12.5% once
def test_scrambled_images_use_the_pixel_range_and_vary_with_the_image(embeddings, key_byte):
    pixels = make(Key(key_byte * 32), 256).scramble(embeddings).pixels.float()
    assert pixels.std() > 50  # a collapsed (near-constant grey) generator has a std of a few levels
    assert pixels.std(0).mean() > 25  # different images give different scrambles
    assert 60 < pixels.mean() < 190
    assert ((pixels == 0) | (pixels == 255)).float().mean() < 0.1  # not saturated either


def test_weights_are_frozen():
    generator = make(Key.generate())
    assert not generator.training
    assert not any(p.requires_grad for p in generator.parameters())


def test_rejects_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power of two"):
        ScramblingGenerator(Key.generate(), EMBEDDING_DIM, image_size=100)


def test_the_torch_floor_has_the_api_exact_arithmetic_calls():
    """Before: the package allowed torch>=2.2, but `exact_arithmetic` sets torch.backends.cudnn.conv.fp32_precision,
    which torch 2.9 introduced."""
    import re

    from packaging.version import Version

    from tests.conftest import REPO

    (floor,) = re.findall(r'"torch>=([\d.]+)"', (REPO / "pyproject.toml").read_text())
    assert Version(floor) >= Version("2.9") and hasattr(torch.backends.cudnn.conv, "fp32_precision")
