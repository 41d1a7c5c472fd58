import torch

from owsd.attacks.clustering import cluster_agreement, log_probabilities
from owsd.attacks.common import pixel_features
from owsd.components.generator import ScramblingGenerator
from owsd.components.key import Key
from tests.attacks.conftest import CLASSES, DIM, SAMPLES, gaussian_clusters


def test_identity_scrambling_gives_the_classes_away():
    features, labels = gaussian_clusters()
    scores = cluster_agreement(features, labels, CLASSES)
    assert scores["nmi"] > 0.8 and scores["ari"] > 0.8


def test_a_linear_scrambler_hides_the_clusters_no_better():
    features, labels = gaussian_clusters()
    g = torch.Generator().manual_seed(1)
    rotation, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=g))
    mixing = torch.randn(DIM, 64, generator=g)
    for mapped in (features @ rotation, features @ mixing):
        assert cluster_agreement(mapped, labels, CLASSES)["nmi"] > 0.8


def test_cloud_answers_cluster_after_taking_logs():
    features, labels = gaussian_clusters()
    logits = features @ torch.randn(DIM, 10, generator=torch.Generator().manual_seed(2))
    probabilities = torch.softmax(logits / 10, dim=1)
    assert torch.isfinite(log_probabilities(torch.zeros(2, 3))).all()
    assert cluster_agreement(log_probabilities(probabilities), labels, CLASSES)["nmi"] > 0.8


def test_a_tiny_keyed_generator_keeps_well_separated_classes_apart():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(SAMPLES) % CLASSES
    centres = torch.randn(CLASSES, 16, generator=g).abs() * 3
    embeddings = centres[labels] + 0.3 * torch.rand(SAMPLES, 16, generator=g)
    pixels = ScramblingGenerator(Key(b"c" * 32), 16, image_size=16, base_channels=8).scramble(embeddings).pixels
    assert cluster_agreement(pixel_features(pixels, 16), labels, CLASSES)["nmi"] > 0.8


def test_clusters_unrelated_to_the_labels_score_near_zero():
    features, labels = gaussian_clusters()
    shuffled = labels[torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(4))]
    scores = cluster_agreement(features, shuffled, CLASSES)
    assert scores["nmi"] < 0.05 and abs(scores["ari"]) < 0.05
