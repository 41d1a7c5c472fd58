"""Labelled private images, each with a stable id so the cache can be indexed by image.

A source lists `(image_id, label)` cheaply and loads one image on demand as uint8 3×S×S (resized so
the shorter side is S, then centre-cropped); every model resizes further on its own.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from owsd.data.image_modes import rgb8
from owsd.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def square_rgb(image: Image.Image, size: int) -> torch.Tensor:
    """Any PIL image → uint8 3×size×size: 8-bit RGB as `rgb8` makes it, shorter side resized to `size`, then
    centre-cropped."""
    image = rgb8(image)
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def load_image(path: Path, size: int) -> torch.Tensor:
    """An image file as `square_rgb` at `size`; `DataError` naming the file if it cannot be read."""
    try:
        with Image.open(path) as image:
            return square_rgb(image, size)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None


class ImageSource(ABC):
    """A labelled image collection."""

    @property
    @abstractmethod
    def classes(self) -> list[str]:
        """Class names; a label is an index into this list."""

    @property
    @abstractmethod
    def items(self) -> list[tuple[str, int]]:
        """`(image_id, label)` for every image, in a fixed order."""

    @abstractmethod
    def load(self, index: int, size: int) -> torch.Tensor:
        """Image `index` of `items` as uint8 3×size×size; `DataError` naming it if unreadable."""

    @property
    def labels_are_cloud_classes(self) -> bool:
        """Whether label i is the cloud's class i (enables the paper's "Cloud Class." metrics)."""
        return False

    @property
    def provenance(self) -> str | None:
        """The dataset split the images come from (`cifar10:test`, `ILSVRC2012:val`); None when unknown.

        Compared with the cloud's `trained_on`: the IIN must never be trained on the cloud's own training images."""
        return None

    @property
    def identity(self) -> dict[str, Any]:
        """What names this data for the cache: kind, location and a hash of the ids and labels."""
        digest = hashlib.sha256(repr(self.items).encode()).hexdigest()[:16]
        return {"kind": type(self).__name__, "items_sha256": digest, **self._location()}

    def _location(self) -> dict[str, Any]:
        return {}


def folder_setting(root: str | Path, layout: str) -> Path:
    """`root` with its `$NAME`s taken from the environment (the shipped ImageNet configs read
    `$OWSD_IMAGENET/val`, so each machine sets its data root once); one line when a name is unset or the folder
    is missing, saying what to set and the layout it must have."""
    text = str(root)
    for name in re.findall(r"\$\{?(\w+)\}?", text):
        if name not in os.environ:
            raise DataError(f"data.source.init_args.root {text}: {name} is not set; export {name}=FOLDER, with "
                            f"{text.replace('$' + name, 'FOLDER')} holding {layout}, or give "
                            "--data.source.init_args.root")  # fmt: skip
    folder = Path(os.path.expandvars(text))
    if not folder.is_dir():
        raise DataError(
            f"image folder {folder} does not exist: give data.source.init_args.root a folder holding {layout}"
        )
    return folder


class ImageFolderSource(ImageSource):
    """`root/<class name>/<image>`: an organisation's own labelled images (torchvision's layout).

    Args:
        root: the folder holding one sub-folder per class (`$NAME`s are read from the environment).
        labels_are_cloud_classes: set when the sorted class folders are exactly the cloud's classes.
        provenance: the dataset split the folders hold (e.g. `ILSVRC2012:train`), when known.
        content_hash: name the cache by every file's contents instead of its size and modification time
            (reads every image once per run; for folders whose files are rewritten with their stamps kept).
    """

    def __init__(
        self,
        root: str | Path,
        labels_are_cloud_classes: bool = False,
        provenance: str | None = None,
        content_hash: bool = False,
    ) -> None:
        self.root = folder_setting(root, self.layout)
        self._cloud_classes = labels_are_cloud_classes
        self._provenance = provenance
        self.content_hash = content_hash

    layout = "one sub-folder of images per class"

    @cached_property
    def classes(self) -> list[str]:
        classes = sorted(entry.name for entry in self.root.iterdir() if entry.is_dir())
        if not classes:
            raise DataError(f"image folder {self.root} has no class sub-folders")
        return classes

    @cached_property
    def items(self) -> list[tuple[str, int]]:
        items = [
            (path.relative_to(self.root).as_posix(), label)
            for label, name in enumerate(self.classes)
            for path in sorted((self.root / name).rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        ]
        if not items:
            raise DataError(f"image folder {self.root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return items

    @property
    def labels_are_cloud_classes(self) -> bool:
        return self._cloud_classes

    @property
    def provenance(self) -> str | None:
        return self._provenance

    def load(self, index: int, size: int) -> torch.Tensor:
        return load_image(self.root / self.items[index][0], size)

    def _location(self) -> dict[str, Any]:
        """An image replaced by another (even of the same size) names another cache: its modification time
        changed, or, with `content_hash`, its bytes. Not the folder's absolute path: nodes that mount the same
        images at different paths share one cache."""
        digest = hashlib.sha256()
        for image_id, _ in self.items:
            path = self.root / image_id
            if self.content_hash:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            else:
                stamp = path.stat()
                digest.update(f"{stamp.st_size}:{stamp.st_mtime_ns}\n".encode())
        kind = "file_contents_sha256" if self.content_hash else "file_stamps_sha256"
        return {kind: digest.hexdigest()[:16]}


class ImageNetValSource(ImageFolderSource):
    """ILSVRC2012 validation images in `root/<wnid>/<image>` folders; labels are ImageNet-1k indices.

    Label i is ImageNet class i even when only some synset folders are present, so a cloud trained
    on ImageNet-1k answers in the same label space.
    """

    layout = "ILSVRC2012's validation images in one folder per synset (n01440764/ILSVRC2012_val_00000293.JPEG, ...)"

    def __init__(self, root: str | Path, content_hash: bool = False) -> None:
        super().__init__(root, labels_are_cloud_classes=True, provenance="ILSVRC2012:val", content_hash=content_hash)

    @cached_property
    def classes(self) -> list[str]:
        from timm.data import ImageNetInfo

        return list(ImageNetInfo().label_names())

    @cached_property
    def items(self) -> list[tuple[str, int]]:
        present = {entry.name for entry in self.root.iterdir() if entry.is_dir()}
        unknown = sorted(present - set(self.classes))
        if unknown:
            raise DataError(f"{self.root} holds folders that are not ImageNet synsets: {', '.join(unknown[:5])}")
        return super().items


class HFImageSource(ImageSource):
    """An image-classification dataset through Hugging Face `datasets` (hub name or local path).

    Args:
        path: e.g. `uoft-cs/cifar10`, or a local folder saved with `save_to_disk` / a dataset script.
        split: the split to draw the private images from (the paper uses the test split).
        image_column: the column of the images (`img` for CIFAR-10).
        label_column: the column of the labels (`label` for CIFAR-10).
        labels_are_cloud_classes: set when the cloud was trained on this dataset's labels.
        provenance: the dataset split, when `path` and `split` do not name it (see `hf_provenance`).
    """

    def __init__(
        self,
        path: str,
        split: str = "test",
        image_column: str = "img",
        label_column: str = "label",
        labels_are_cloud_classes: bool = False,
        provenance: str | None = None,
    ) -> None:
        self.path, self.split = path, split
        self.image_column, self.label_column = image_column, label_column
        self._cloud_classes = labels_are_cloud_classes
        self._provenance = provenance or hf_provenance(path, split)

    @cached_property
    def dataset(self) -> Any:
        import datasets

        try:
            if Path(self.path).is_dir() and (Path(self.path) / "dataset_info.json").exists():
                loaded = datasets.load_from_disk(self.path)
                loaded = loaded[self.split] if isinstance(loaded, datasets.DatasetDict) else loaded
            else:
                loaded = datasets.load_dataset(self.path, split=self.split)
        except Exception as error:
            raise DataError(f"cannot load dataset {self.path!r} split {self.split!r}: {error}") from None
        for column in (self.image_column, self.label_column):
            if column not in loaded.column_names:
                raise ConfigError(f"dataset {self.path!r} has no column {column!r} (has {loaded.column_names})")
        return loaded

    @cached_property
    def classes(self) -> list[str]:
        feature = self.dataset.features[self.label_column]
        names = getattr(feature, "names", None)
        return list(names) if names else [str(i) for i in range(max(self.dataset[self.label_column]) + 1)]

    @cached_property
    def items(self) -> list[tuple[str, int]]:
        return [(f"{self.split}/{i}", int(label)) for i, label in enumerate(self.dataset[self.label_column])]

    @property
    def labels_are_cloud_classes(self) -> bool:
        return self._cloud_classes

    @property
    def provenance(self) -> str:
        return self._provenance

    def load(self, index: int, size: int) -> torch.Tensor:
        try:
            image = self.dataset[index][self.image_column]
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image, dtype=np.uint8))
            return square_rgb(image, size)
        except (OSError, UnidentifiedImageError, ValueError, TypeError, Image.DecompressionBombError) as error:
            raise DataError(f"cannot read image {self.split}/{index} of dataset {self.path!r}: {error}") from None

    def _location(self) -> dict[str, Any]:
        location = {"path": self.path, "split": self.split, "fingerprint": getattr(self.dataset, "_fingerprint", "")}
        if self.image_column != "img":  # only when set, so caches made before it counted stay valid
            location["image_column"] = self.image_column
        return location


def hf_provenance(path: str, split: str) -> str:
    """`uoft-cs/cifar10` + `test` → `cifar10:test`: the dataset's own name (the last part of a hub name or
    folder, lower-cased; `imagenet-1k` is `ILSVRC2012`) and the split without slicing (`validation` is `val`)."""
    name = Path(path.rstrip("/")).name.lower()
    split = split.split("[", 1)[0].strip()
    return f"{_HF_NAMES.get(name, name)}:{_HF_SPLITS.get(split, split)}"


_HF_NAMES = {"imagenet-1k": "ILSVRC2012", "imagenet_1k": "ILSVRC2012"}
_HF_SPLITS = {"validation": "val"}
