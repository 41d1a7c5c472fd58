import pytest
import torch
import torch.nn.functional as F

from owsd.attacks.inversion import inversion_scores, invert_embeddings, train_probe

E, D, CLASSES = 32, 96, 4


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    """Non-negative clustered embeddings (public / known pairs / test) and noisy linear 'scrambles' of them."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(CLASSES, E, generator=g) * 1.5
    mix = torch.randn(E, D, generator=g)
    out = {}
    for split, n in (("public", 300), ("train", 300), ("test", 100)):
        labels = torch.randint(0, CLASSES, (n,), generator=g)
        embeddings = F.relu(centers[labels] + torch.randn(n, E, generator=g))
        out |= {f"{split}_labels": labels, f"{split}_embeddings": embeddings}
        out[f"{split}_features"] = embeddings @ mix + 0.5 * torch.randn(n, D, generator=g)
    return out


@pytest.fixture(scope="module")
def probe(data):
    return train_probe(data["public_embeddings"], data["public_labels"])


def test_a_linear_scrambling_is_inverted(data, probe):
    recovered = invert_embeddings(data["train_features"], data["train_embeddings"], data["test_features"], dims=64)
    scores = inversion_scores(recovered, data["test_embeddings"], probe, data["test_labels"])
    assert recovered.dtype == torch.float32 and recovered.shape == data["test_embeddings"].shape
    assert scores["cosine"] > 0.9 and scores["identification"] > 0.9 and scores["probe_accuracy"] > 0.9


def test_shuffled_pairs_recover_only_the_mean_embedding(data, probe):
    shuffled = data["train_embeddings"][torch.randperm(300, generator=torch.Generator().manual_seed(1))]
    recovered = invert_embeddings(data["train_features"], shuffled, data["test_features"], dims=64)
    scores = inversion_scores(recovered, data["test_embeddings"], probe, data["test_labels"])
    mean = data["train_embeddings"].mean(0, keepdim=True)
    cosine_of_mean = F.cosine_similarity(mean, data["test_embeddings"]).mean().item()
    assert cosine_of_mean > 0.5  # why a plain cosine must be read against this baseline
    assert abs(scores["cosine"] - cosine_of_mean) < 0.05
    assert scores["identification"] < 0.05  # chance is 1/100
    assert scores["probe_accuracy"] < 0.45  # chance ≈ 0.25 (observed 0.26; the largest class is 29 %)


def test_a_fixed_alpha_is_used_as_given(data):
    args = data["train_features"], data["train_embeddings"], data["test_features"]
    exact = inversion_scores(invert_embeddings(*args, dims=64, alpha=1e-3), data["test_embeddings"])
    crushed = inversion_scores(invert_embeddings(*args, dims=64, alpha=1e9), data["test_embeddings"])
    assert exact["identification"] > 0.9 and crushed["identification"] < 0.05


def test_scores_accept_class_scores_or_ids_from_the_probe():
    true = torch.eye(3) + 0.1
    labels = torch.tensor([0, 1, 2])
    by_ids = inversion_scores(true, true, lambda x: torch.tensor([0, 1, 0]), labels)
    by_scores = inversion_scores(true, true, lambda x: x, labels)  # argmax of row i is i
    assert by_ids == pytest.approx({"cosine": 1.0, "identification": 1.0, "probe_accuracy": 2 / 3})
    assert by_scores["probe_accuracy"] == 1.0
    swapped = inversion_scores(true[[1, 0, 2]], true)
    assert swapped["identification"] == pytest.approx(1 / 3)
    assert "probe_accuracy" not in swapped
