"""The data module refuses IIN images the cloud was trained on (the paper's use case 1 needs them disjoint)."""

from pathlib import Path

import pytest

from owsd.components.cloud import LocalCloud
from owsd.components.keras_cifar10 import KerasCifar10Cloud
from owsd.components.scrambler import ScramblerSettings
from owsd.components.timm_models import ModelSpec
from owsd.data.digits import MnistSource
from owsd.data.sources import HFImageSource, ImageFolderSource, ImageNetValSource
from owsd.datamodule import EvenBatches, OWSDDataModule
from owsd.errors import ConfigError
from tests.conftest import TINY_IMAGES


def data_module(source, cloud, tmp_path: Path) -> OWSDDataModule:
    encoders = [ModelSpec("test_efficientnet", "random")]
    return OWSDDataModule(source, encoders, cloud, ScramblerSettings(tmp_path / "k.key"), cache_dir=tmp_path)


def test_sources_name_the_dataset_split_they_hold(tmp_path):
    assert HFImageSource("uoft-cs/cifar10", split="test").provenance == "cifar10:test"
    assert HFImageSource("uoft-cs/cifar100", split="train[:10%]").provenance == "cifar100:train"
    assert HFImageSource("ILSVRC/imagenet-1k", split="validation").provenance == "ILSVRC2012:val"
    assert HFImageSource(str(tmp_path / "copy"), provenance="cifar10:test").provenance == "cifar10:test"
    assert MnistSource().provenance == "mnist:train"
    assert ImageFolderSource(TINY_IMAGES).provenance is None
    assert ImageFolderSource(TINY_IMAGES, provenance="cifar10:test").provenance == "cifar10:test"
    (tmp_path / "n01440764").mkdir()
    assert ImageNetValSource(tmp_path).provenance == "ILSVRC2012:val"


def test_clouds_name_what_they_were_trained_on():
    assert LocalCloud("tf_efficientnet_lite2", "pypi").trained_on == ("ILSVRC2012:train",)
    assert LocalCloud("resnet50", "pretrained").trained_on == ("ILSVRC2012:train",)
    assert LocalCloud("test_resnet", "random").trained_on == ()
    assert LocalCloud("test_resnet", "random", trained_on=["mine:train"]).trained_on == ("mine:train",)
    assert KerasCifar10Cloud().trained_on == ("cifar10:train",)


def test_images_the_cloud_was_trained_on_are_refused_naming_both_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"data.source holds cifar10:train .*data.cloud .*trained_on: cifar10:train"):
        data_module(ImageFolderSource(TINY_IMAGES, provenance="cifar10:train"), KerasCifar10Cloud(), tmp_path)
    with pytest.raises(ConfigError, match="ILSVRC2012:train"):  # split names compare case-insensitively
        data_module(ImageFolderSource(TINY_IMAGES, provenance="ilsvrc2012:TRAIN"), LocalCloud("resnet50"), tmp_path)
    data_module(ImageFolderSource(TINY_IMAGES, provenance="cifar10:test"), KerasCifar10Cloud(), tmp_path)
    data_module(ImageFolderSource(TINY_IMAGES), KerasCifar10Cloud(), tmp_path)  # unknown provenance: allowed
    data_module(MnistSource(), LocalCloud("tf_efficientnet_lite2", "pypi"), tmp_path)  # the demo


@pytest.mark.parametrize(("size", "batch_size"), [(100, 64), (100, 7), (100, 1000), (65, 64), (10, 64), (128, 64)])
def test_every_training_image_is_seen_every_epoch_in_batches_of_nearly_equal_size(size, batch_size):
    epoch = list(EvenBatches(size, batch_size))
    assert sorted(index for batch in epoch for index in batch) == list(range(size))
    sizes = [len(batch) for batch in epoch]
    assert len(epoch) == len(EvenBatches(size, batch_size)) == -(-size // batch_size)
    assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1
    assert list(EvenBatches(size, batch_size)) != epoch or size <= 1 or len(epoch) == 1  # reshuffled each epoch
