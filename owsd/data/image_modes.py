"""Every PIL mode to 8-bit RGB, deliberately: what an image folder holds is what the encoder should see.

Pillow's own `convert("RGB")` clips 16- and 32-bit values to 255 (a 16-bit grayscale scan turns almost all
white), drops alpha onto black, and ignores the EXIF orientation a camera wrote. Here:
- EXIF orientation is applied (a phone photo is seen upright);
- 16-bit images are scaled by their type's range (÷257); 32-bit integer images holding 16-bit values likewise
  (Pillow opens some 16-bit files so), any other by the image's own minimum and maximum; float images in
  [0, 1] by 255, any other by their minimum and maximum;
- transparency (RGBA, LA, PA, a palette's transparent colour) is composited over white, as a viewer shows it;
- CMYK, YCbCr, LAB, HSV, palette and 1-bit images go through Pillow's conversion.
"""

import numpy as np
from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)  # what transparent pixels become
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def rgb8(image: Image.Image) -> Image.Image:
    """`image` upright, as 8-bit RGB (see the module's rules)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), image.mode)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if mode in _SIXTEEN_BIT or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:  # no range of its own to go by: the image's
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
