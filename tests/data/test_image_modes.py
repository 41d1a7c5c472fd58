"""Real files of every PIL mode an image folder may hold become the 8-bit RGB a viewer would show."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from owsd.data.sources import load_image

SIDE = 32
RAMP = np.linspace(0, 1, SIDE * SIDE).reshape(SIDE, SIDE)  # dark top-left to bright bottom-right


def gray(tensor) -> np.ndarray:
    """The first channel of a loaded image, as numbers (3×S×S uint8 → S×S)."""
    return tensor[0].numpy().astype(int)


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_a_16_bit_grayscale_png_is_scaled_by_its_range_not_clipped(tmp_path):
    """Before: 99.2% of its pixels came out at 255."""
    path = save(Image.fromarray((RAMP * 65535).astype(np.uint16)), tmp_path / "scan.png")
    assert Image.open(path).mode.startswith("I")  # Pillow reads it as 16 (or 32) bits
    loaded = gray(load_image(path, SIDE))
    assert np.abs(loaded - np.rint(RAMP * 255)).max() <= 1
    assert (loaded == 255).mean() < 0.01


@pytest.mark.parametrize("kind, scale", [("float", 1.0), ("float", 5e6), ("int", 40_000.0), ("int", 5e6)])
def test_32_bit_integer_and_float_tiffs_use_their_range(tmp_path, kind, scale):
    values = (RAMP * scale).astype(np.float32 if kind == "float" else np.int32)
    loaded = gray(load_image(save(Image.fromarray(values), tmp_path / "x.tif"), SIDE))
    assert np.all(np.diff(loaded[:, 0]) >= 0) and loaded.min() == 0, "the ramp stays a ramp"
    # integers within 16 bits are read as 16-bit values; floats in [0, 1] and anything else span 0-255
    assert loaded.max() == (round(40_000 / 257) if scale == 40_000.0 else 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])  # Pillow writes no PA file
def test_transparent_pixels_are_white_as_a_viewer_shows_them(tmp_path, mode):
    rgba = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))  # all transparent black
    rgba.paste((200, 30, 40, 255), (0, 0, SIDE // 2, SIDE))  # left half opaque red
    image = rgba if mode == "RGBA" else rgba.convert(mode)
    path = save(image, tmp_path / f"{mode}.png")
    loaded = load_image(path, SIDE).numpy()
    assert loaded[:, :, -1].min() == 255, "the transparent half is white"
    assert loaded[0, :, 0].max() < 255, "the opaque half keeps its colour"


def test_a_palette_with_a_transparent_colour_is_white_there(tmp_path):
    image = Image.new("P", (SIDE, SIDE), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    image.paste(0, (0, 0, SIDE // 2, SIDE))
    path = save(image, tmp_path / "p.png", transparency=0)
    loaded = load_image(path, SIDE).numpy()
    assert (loaded[:, :, 0] == 255).all() and tuple(loaded[:, 0, -1]) == (10, 200, 10)


@pytest.mark.parametrize("mode, suffix", [("CMYK", "jpg"), ("CMYK", "tif"), ("1", "png"), ("L", "png"), ("P", "gif")])
def test_other_modes_become_the_colours_they_hold(tmp_path, mode, suffix):
    red = Image.new("RGB", (SIDE, SIDE), (220, 20, 30))
    image = red.convert(mode)
    path = save(image, tmp_path / f"x.{suffix}")
    loaded = load_image(path, SIDE).numpy()
    expected = np.asarray(Image.open(path).convert("RGB"))[5, 5]  # the colour the file holds
    assert np.abs(loaded[:, 5, 5].astype(int) - expected).max() <= 8


def test_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with orientation 6 (rotate 90° clockwise to view) is seen upright."""
    upright = Image.new("RGB", (SIDE * 2, SIDE), (0, 0, 0))
    upright.paste((255, 255, 255), (0, 0, SIDE * 2, SIDE // 2))  # white top half
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how the camera wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    path = tmp_path / "phone.jpg"
    path.write_bytes(buffer.getvalue())
    loaded = gray(load_image(path, SIDE))
    assert loaded[: SIDE // 4].mean() > 200 and loaded[-SIDE // 4 :].mean() < 50
