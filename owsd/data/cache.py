"""The precompute cache: per image, the encoders' embeddings and the cloud's vectors, stored once.

One directory per fingerprint of everything that changes the numbers (data, encoders and weights,
key fingerprint, cloud, image sizes). Inside, shards hold rows indexed by image id; any subset,
seed or sweep takes its rows from here. A shard appears only complete (temp file + fsync + rename),
so a run killed mid-way leaves whole shards that the next run keeps, and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from owsd.errors import DataError
from owsd.files import atomic_write

FORMAT_VERSION = 1
ROW_FIELDS = ("embedding", "cloud", "plaintext_cloud")


def fingerprint(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CachedRows:
    """Rows for a list of images; each field is one tensor with the encoders' parts concatenated."""

    image_ids: list[str]
    labels: torch.Tensor
    embedding: torch.Tensor
    cloud: torch.Tensor
    plaintext_cloud: torch.Tensor | None


class PairCache:
    """A cache directory for one pipeline fingerprint."""

    def __init__(self, root: Path, description: dict[str, Any]) -> None:
        self.description = {"format": FORMAT_VERSION, **description}
        self.directory = Path(root) / fingerprint(self.description)
        self._shards: dict[Path, dict[str, Any]] | None = None
        self._index: dict[str, tuple[Path, int]] = {}

    def prepare(self) -> None:
        """Create the directory and record what it holds (for people reading the cache)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.directory / "manifest.json"
        if not manifest.exists():
            atomic_write(manifest, lambda p: p.write_text(json.dumps(self.description, indent=2, sort_keys=True)))

    def missing(self, image_ids: list[str]) -> list[str]:
        present = self._scan()
        return [image_id for image_id in image_ids if image_id not in present]

    def write_shard(self, image_ids: list[str], labels: torch.Tensor, fields: dict[str, torch.Tensor]) -> Path:
        """Store one batch of rows; the shard is named by its ids, so a re-run rewrites the same file."""
        name = hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:20]
        path = self.directory / f"shard-{name}.pt"
        shard = {"image_ids": list(image_ids), "labels": labels.cpu(), **{k: v.cpu() for k, v in fields.items()}}
        atomic_write(path, lambda p: torch.save(shard, p))
        self.refresh()
        return path

    def refresh(self) -> None:
        """Forget what was read, so the next look sees shards written since (e.g. by other processes)."""
        self._shards = None

    def read(self, image_ids: list[str]) -> CachedRows:
        index = self._scan()
        absent = [image_id for image_id in image_ids if image_id not in index]
        if absent:
            raise DataError(
                f"cache {self.directory} lacks {len(absent)} images, e.g. {absent[0]}; "
                "precompute them with `owsd fit` or OWSDDataModule.prepare_cache(trainer)"
            )
        rows: dict[str, list[torch.Tensor]] = {field: [] for field in ("labels", *ROW_FIELDS)}
        for image_id in image_ids:
            path, row = index[image_id]
            for field in rows:
                if self._shards[path].get(field) is not None:
                    rows[field].append(self._shards[path][field][row])
        stacked = {field: torch.stack(values) if values else None for field, values in rows.items()}
        return CachedRows(list(image_ids), **stacked)

    def _scan(self) -> dict[str, tuple[Path, int]]:
        """Load every complete shard once; an id stored twice (e.g. by two processes) keeps its first row."""
        if self._shards is None:
            self._shards, self._index = {}, {}
            for path in sorted(self.directory.glob("shard-*.pt")):
                self._shards[path] = torch.load(path, map_location="cpu", weights_only=True)
                for row, image_id in enumerate(self._shards[path]["image_ids"]):
                    self._index.setdefault(image_id, (path, row))
        return self._index
