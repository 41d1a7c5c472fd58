import pytest
import torch

from owsd.attacks.label_leakage import few_label_accuracy
from tests.attacks.conftest import CLASSES, DIM, SAMPLES, gaussian_clusters


def test_five_labels_per_class_label_an_unscrambled_set():
    features, labels = gaussian_clusters()
    assert few_label_accuracy(features, labels, per_class=5)["accuracy"] > 0.9


def test_five_labels_per_class_see_through_a_linear_scrambler():
    features, labels = gaussian_clusters()
    mixing = torch.randn(DIM, 64, generator=torch.Generator().manual_seed(1))
    assert few_label_accuracy(features @ mixing, labels, per_class=5)["accuracy"] > 0.9


def test_labels_unrelated_to_the_features_give_chance_accuracy():
    features, labels = gaussian_clusters()
    shuffled = labels[torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(2))]
    assert few_label_accuracy(features, shuffled, per_class=5)["accuracy"] < 1 / CLASSES + 0.1


def test_a_class_too_small_to_leave_anything_to_evaluate_is_refused():
    features, labels = gaussian_clusters()
    labels = labels.clone()
    labels[:5] = CLASSES  # a sixth class with exactly per_class examples
    with pytest.raises(ValueError, match="class 5 has 5 examples"):
        few_label_accuracy(features, labels, per_class=5)
