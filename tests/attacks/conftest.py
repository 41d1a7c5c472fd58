import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny tensors run faster on one thread than on two that wait for each other (and for other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CLASSES, SAMPLES, DIM = 5, 500, 20  # shared by the clustering and label-leakage tests


def gaussian_clusters(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Well-separated unit-variance clusters, one per label: what a scrambler that hides nothing would emit."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(SAMPLES) % CLASSES
    centres = torch.randn(CLASSES, DIM, generator=g) * 3
    return centres[labels] + torch.randn(SAMPLES, DIM, generator=g), labels
