import pytest
import torch

from owsd.data.sources import ImageSource
from owsd.data.synthetic import POOL_IMAGES, SyntheticSource
from owsd.errors import ConfigError


def test_ids_labels_and_class_names():
    source = SyntheticSource(25, classes=4)
    assert isinstance(source, ImageSource)
    assert source.classes == ["class0", "class1", "class2", "class3"]
    assert len(source.items) == 25
    assert source.items[0] == ("synthetic/0", 0) and source.items[7] == ("synthetic/7", 3)
    assert [label for _, label in source.items] == [i % 4 for i in range(25)]


def test_loads_are_uint8_squares_and_deterministic():
    first, again = SyntheticSource(10, image_size=32, seed=3), SyntheticSource(10, image_size=32, seed=3)
    image = first.load(2, 48)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 48)
    assert torch.equal(image, again.load(2, 48))
    assert torch.equal(first.load(5, 16), again.load(5, 16))
    assert image.float().std() > 5  # a texture, not a flat grey
    assert not torch.equal(image, first.load(3, 48))
    assert not torch.equal(image, SyntheticSource(10, image_size=32, seed=4).load(2, 48))


def test_every_load_decodes_a_jpeg_from_a_small_pool_that_keeps_labels():
    source = SyntheticSource(1000, classes=10, image_size=16)
    pool = source._pool
    assert len(pool) <= POOL_IMAGES and len(pool) % 10 == 0
    assert all(jpeg[:2] == b"\xff\xd8" for jpeg in pool)  # JPEG start-of-image marker
    twin = len(pool)  # item `twin` reuses item 0's JPEG, and has its label
    assert source.items[twin][1] == source.items[0][1]
    assert torch.equal(source.load(twin, 16), source.load(0, 16))
    with pytest.raises(IndexError):
        source.load(1000, 16)


def test_identity_changes_with_every_argument():
    base = SyntheticSource(20).identity
    assert base == SyntheticSource(20).identity
    assert base["kind"] == "SyntheticSource"
    others = [SyntheticSource(21), SyntheticSource(20, classes=5), SyntheticSource(20, image_size=32)]
    for other in [*others, SyntheticSource(20, seed=1)]:
        assert other.identity != base


@pytest.mark.parametrize(
    ("arguments", "setting"),
    [
        ({"images": 0}, "images"),
        ({"images": 5, "classes": 0}, "classes"),
        ({"images": 5, "image_size": 7}, "image_size"),
        ({"images": 2.5}, "images"),
        ({"images": 5, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_setting(arguments, setting):
    with pytest.raises(ConfigError, match=rf"SyntheticSource {setting} must be"):
        SyntheticSource(**arguments)
