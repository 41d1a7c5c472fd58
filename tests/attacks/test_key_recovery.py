import pytest
import torch
from torch import nn

from owsd.attacks.key_recovery import generator_fit_scores, recover_generator, trainable
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key

E, S = 16, 8  # the weak linear setup
REAL = {"embedding_dim": 16, "image_size": 16, "base_channels": 8}


def linear() -> nn.Module:
    return nn.Sequential(nn.Linear(E, 3 * S * S), nn.Unflatten(1, (3, S, S)), nn.Tanh())


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def linear_pairs() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A secret linear+tanh 'generator' (weights scaled to stay off tanh's flat ends) and 500 of its pairs."""
    g = torch.Generator().manual_seed(0)
    secret = linear()
    with torch.no_grad():
        secret[0].weight.copy_(torch.randn(3 * S * S, E, generator=g) * 0.5 / E**0.5)
        secret[0].bias.copy_(torch.randn(3 * S * S, generator=g) * 0.1)
        embeddings = torch.randn(500, E, generator=g)
        return secret, embeddings, to_pixels(secret(embeddings))


@pytest.fixture(scope="module")
def real_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """1,100 pairs of a small real keyed generator, on non-negative (ReLU-like) embeddings."""
    embeddings = torch.rand(1100, REAL["embedding_dim"], generator=torch.Generator().manual_seed(1)) ** 2
    return embeddings, ScramblingGenerator(Key(b"s" * 32), **REAL).scramble(embeddings).pixels


def real_architecture() -> nn.Module:
    # The adversary's natural start: the public architecture, initialised from a key of its own.
    return trainable(ScramblingGenerator(Key(b"a" * 32), **REAL))


def fit_linear(embeddings: torch.Tensor, pixels: torch.Tensor) -> nn.Module:
    return recover_generator(linear, embeddings, pixels, epochs=50, batch_size=64, lr=1e-2)


def test_a_linear_generator_is_recovered_almost_exactly(linear_pairs):
    secret, embeddings, pixels = linear_pairs
    fitted = fit_linear(embeddings[:400], pixels[:400])
    error = (fitted[0].weight - secret[0].weight).norm() / secret[0].weight.norm()
    scores = generator_fit_scores(fitted, embeddings[400:], pixels[400:], invert_steps=100)
    assert error < 0.05  # observed 0.0014
    assert scores["pixel_r2"] > 0.95 and scores["embedding_cosine"] > 0.9  # observed 0.99997, 0.999999


def test_a_linear_fit_to_shuffled_pairs_predicts_nothing(linear_pairs):
    _, embeddings, pixels = linear_pairs
    shuffled = pixels[:400][torch.randperm(400, generator=torch.Generator().manual_seed(2))]
    scores = generator_fit_scores(fit_linear(embeddings[:400], shuffled), embeddings[400:], pixels[400:], 100)
    assert scores["pixel_r2"] < 0.02  # observed -0.10
    assert abs(scores["embedding_cosine"]) < 0.3  # observed -0.14


def test_a_small_real_generator_fitted_to_known_pairs_predicts_held_out_scrambles(real_pairs):
    embeddings, pixels = real_pairs
    held_out = embeddings[1000:], pixels[1000:]
    unfitted = generator_fit_scores(real_architecture().eval(), *held_out, invert_steps=100)
    fitted = recover_generator(real_architecture, embeddings[:1000], pixels[:1000], epochs=20, lr=1e-2)
    scores = generator_fit_scores(fitted, *held_out, invert_steps=100)
    assert unfitted["pixel_r2"] < 0 and abs(unfitted["embedding_cosine"]) < 0.2  # observed -2.9, 0.03
    assert scores["pixel_r2"] > 0.3  # observed 0.62–0.80 over three keys and seeds
    assert scores["embedding_cosine"] > 0.7  # observed 0.93–0.95


def test_a_small_real_generator_fitted_to_shuffled_pairs_predicts_nothing(real_pairs):
    embeddings, pixels = real_pairs
    shuffled = pixels[:1000][torch.randperm(1000, generator=torch.Generator().manual_seed(3))]
    fitted = recover_generator(real_architecture, embeddings[:1000], shuffled, epochs=20, lr=1e-2)
    scores = generator_fit_scores(fitted, embeddings[1000:], pixels[1000:], invert_steps=100)
    assert scores["pixel_r2"] < 0.02  # observed -0.03 to -0.04
    assert abs(scores["embedding_cosine"]) < 0.2  # observed -0.04 to 0.04


def test_recovery_is_deterministic_given_the_seed_and_leaves_the_global_rng_alone(linear_pairs):
    _, embeddings, pixels = linear_pairs
    state = torch.random.get_rng_state()
    first, again, other = (
        recover_generator(linear, embeddings[:64], pixels[:64], epochs=1, batch_size=16, seed=seed)
        for seed in (0, 0, 1)
    )
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first[0].weight, again[0].weight) and not torch.equal(first[0].weight, other[0].weight)
    assert not first.training and not any(p.requires_grad for p in first.parameters())


def test_trainable_unfreezes_a_scrambling_generator():
    generator = ScramblingGenerator(Key(b"k" * 32), **REAL)
    assert trainable(generator) is generator
    assert generator.training and all(p.requires_grad for p in generator.parameters())
