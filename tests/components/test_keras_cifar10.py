from pathlib import Path

import pytest
import torch
from PIL import Image

from owsd.components.cloud import InProcessCloud
from owsd.components.generator import ScramblingGenerator
from owsd.components.keras_cifar10 import CLASSES, KerasCifar10Cloud
from owsd.components.key import Key
from owsd.data.sources import square_rgb
from owsd.errors import ConfigError
from tests.conftest import TINY_IMAGES


@pytest.fixture(scope="module")
def cifar_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 real CIFAR-10 fixture images at 32×32; the label is the file name's last `_N`."""
    files = sorted(TINY_IMAGES.rglob("*.png"))
    labels = torch.tensor([int(path.stem.rsplit("_", 1)[1]) for path in files])
    assert {CLASSES[label] for label in labels.tolist()} == {path.parent.name for path in files}
    return torch.stack([square_rgb(Image.open(path), 32) for path in files]), labels


def test_the_ported_keras_cnn_classifies_real_cifar10_images(cifar_images):
    images, labels = cifar_images
    client = KerasCifar10Cloud().open()
    accuracy = (client.classify_plaintext(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9  # measured: 1.0 (20 of 20); a wrong port (layout, epsilon, order) falls to chance


def test_it_is_an_in_process_cloud_that_answers_scrambled_images(cifar_images):
    cloud = KerasCifar10Cloud()
    assert isinstance(cloud, InProcessCloud) and cloud.cloud_id.startswith("keras-cifar10-cnn-sha256-")
    scrambled = ScramblingGenerator(Key.generate(), 8, image_size=64, base_channels=16).scramble(torch.rand(3, 8))
    probabilities = cloud.open()(scrambled)
    assert probabilities.shape == (3, 10) and torch.allclose(probabilities.sum(1), torch.ones(3))


def test_a_missing_or_foreign_weights_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="nothere.h5 for KerasCifar10Cloud does not exist"):
        KerasCifar10Cloud(str(tmp_path / "nothere.h5"))
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not an hdf5 file")
    with pytest.raises(ConfigError, match="foreign.h5 is not the cifar-10-model Keras CNN"):
        KerasCifar10Cloud(str(foreign)).open()
