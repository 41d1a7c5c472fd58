import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread():
    """Tiny tensors run faster on one thread than on two that wait for each other (and for other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
