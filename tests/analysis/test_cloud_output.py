import math

import pytest
import torch
from torch import nn

from owsd.analysis.cloud_output import (
    cloud_output_summary,
    confidence_drop,
    majority_answer_share,
    mean_entropy,
    relu_zero_fraction,
    top_k_intersection,
)
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key


@pytest.fixture(scope="module")
def probabilities() -> torch.Tensor:
    return torch.randn(50, 20, generator=torch.Generator().manual_seed(0)).softmax(1)


def test_intersection_is_one_for_identical_vectors(probabilities):
    assert top_k_intersection(probabilities, probabilities, 1) == 1.0
    assert top_k_intersection(probabilities, probabilities, 5) == 1.0


def test_intersection_is_zero_for_disjoint_top_k():
    plain = torch.tensor([[5.0, 4, 3, 2, 1, 0, 0, 0, 0, 0]])
    assert top_k_intersection(plain, plain.flip(1), 5) == 0.0
    assert top_k_intersection(plain, plain.roll(2, 1), 5) == pytest.approx(3 / 5)  # labels 2, 3, 4 still lead


def test_intersection_averages_over_images():
    plain = torch.eye(4)
    scrambled = torch.eye(4)[[0, 1, 3, 2]]  # two of four top-1 labels kept
    assert top_k_intersection(plain, scrambled, 1) == 0.5


def test_confidence_drop_is_zero_for_identical_and_one_when_no_mass_is_left(probabilities):
    assert confidence_drop(probabilities, probabilities, 5) == pytest.approx(0.0, abs=1e-12)
    plain = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.2, 0.6]])
    scrambled = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.0, 0.0]])
    assert confidence_drop(plain, scrambled, 1) == pytest.approx(1.0)
    # image 0: top-2 {0, 1} keeps 0 of 0.8; image 1: top-2 {3, 2} keeps 0 of 0.8
    assert confidence_drop(plain, scrambled, 2) == pytest.approx(1.0)


def test_confidence_drop_is_relative():
    plain = torch.tensor([[0.8, 0.1, 0.1]])
    scrambled = torch.tensor([[0.2, 0.4, 0.4]])
    assert confidence_drop(plain, scrambled, 1) == pytest.approx(0.75)


def test_entropy_of_uniform_and_one_hot():
    assert mean_entropy(torch.full((3, 10), 0.1)) == pytest.approx(math.log(10))
    assert mean_entropy(torch.eye(10)) == pytest.approx(0.0, abs=1e-9)


def test_rejects_bad_shapes_and_k(probabilities):
    with pytest.raises(ValueError):
        top_k_intersection(probabilities, probabilities[:, :5], 1)
    with pytest.raises(ValueError):
        confidence_drop(probabilities, probabilities, 21)


def test_summary_caps_k_at_the_width():
    plain = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    summary = cloud_output_summary(plain, plain.roll(1, dims=1))  # top-1 moves to another label
    assert set(summary) == {
        "top1_intersection",
        "top5_intersection",
        "top1_confidence_drop",
        "top5_confidence_drop",
        "entropy_plain",
        "entropy_scrambled",
        "majority_answer_share_plain",
        "majority_answer_share_scrambled",
    }
    assert all(isinstance(v, float) for v in summary.values())
    assert summary["top1_intersection"] == 0.0 and summary["top5_intersection"] == 1.0  # k=3 covers every label
    assert summary["top5_confidence_drop"] == pytest.approx(0.0)
    assert summary["top1_confidence_drop"] == pytest.approx(((1 - 0.1 / 0.6) + (1 - 0.2 / 0.7)) / 2)
    assert summary["entropy_plain"] == pytest.approx(summary["entropy_scrambled"])


def test_the_majority_answer_share_is_one_for_a_cloud_that_answers_one_label_to_everything():
    varied = torch.eye(4).repeat(3, 1)  # 12 images, each label 3 times
    constant = torch.tensor([[0.05, 0.05, 0.85, 0.05]]).repeat(12, 1)
    assert majority_answer_share(varied) == 0.25 and majority_answer_share(constant) == 1.0
    summary = cloud_output_summary(varied, constant)
    assert summary["majority_answer_share_plain"] == 0.25 and summary["majority_answer_share_scrambled"] == 1.0
    with pytest.raises(ValueError):
        majority_answer_share(torch.empty(0, 4))


def test_relu_zero_fraction_of_a_real_generator_is_strictly_between_0_and_1():
    generator = ScramblingGenerator(Key.generate(), embedding_dim=16, image_size=16, base_channels=8)
    embeddings = torch.rand(40, 16, generator=torch.Generator().manual_seed(1))
    fraction = relu_zero_fraction(generator, embeddings, batch_size=7)
    assert 0.0 < fraction < 1.0
    assert fraction == relu_zero_fraction(generator, embeddings, batch_size=40)  # batching changes nothing
    assert all(not m._forward_hooks for m in generator.modules())  # hooks removed


def _constant_relu(bias: float) -> nn.Module:
    linear = nn.Linear(4, 6)
    nn.init.zeros_(linear.weight)
    nn.init.constant_(linear.bias, bias)
    return nn.Sequential(linear, nn.ReLU())


def test_relu_zero_fraction_counts_exact_zeros():
    embeddings = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    assert relu_zero_fraction(_constant_relu(-1.0), embeddings) == 1.0
    assert relu_zero_fraction(_constant_relu(1.0), embeddings) == 0.0
    half = nn.Sequential(_constant_relu(-1.0), nn.Linear(6, 6), nn.ReLU())
    nn.init.zeros_(half[1].weight)
    nn.init.constant_(half[1].bias, 2.0)
    assert relu_zero_fraction(half, embeddings) == 0.5  # both ReLUs pooled, 60 zeros of 120 outputs


def test_relu_zero_fraction_needs_a_relu():
    with pytest.raises(ValueError, match="ReLU"):
        relu_zero_fraction(nn.Linear(4, 4), torch.zeros(2, 4))
