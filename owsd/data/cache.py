"""The precompute cache: per image, the encoders' embeddings and the cloud's vectors, stored once.

One directory per fingerprint of everything that changes the numbers (data, encoders and weights,
key fingerprint, cloud, image sizes, precision). Each encoder's embeddings are also kept in a cache of their
own (`Pipeline.embedding_caches`, fingerprinted without the key and the cloud), so that a run with another
cloud or key runs no encoder. Precompute writes a shard per batch; a shard appears only
complete (temp file + fsync + rename), so a run killed mid-way leaves whole shards that the next run keeps.

Reading packs the shards into one table (`pack-N.bin`, float32 rows, named by `pack-N.json`) that is
memory-mapped, never loaded: every split, seed, recipe and encoder subset of a process reads the same
pages, so memory does not grow with the number of repetitions, and the kernel shares them between processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch

from owsd.errors import DataError
from owsd.files import OWNER_ONLY_FILE, atomic_torch_save, atomic_write, file_sha256, owner_only_folder, set_aside

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ROW_FIELDS = ("embedding", "cloud", "plaintext_cloud")
RECOMPUTED = "its images are computed again"  # what a damaged cache file costs: the cache reads as if without it
_CHUNK_ROWS = 4096  # rows of the old pack copied at a time when a pack grows


def fingerprint(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RowTable:
    """Every cached row: `fields` are N×D float32 views of one memory-mapped file, `labels` the source labels."""

    image_ids: list[str]
    labels: torch.Tensor
    fields: dict[str, torch.Tensor]

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {image_id: row for row, image_id in enumerate(self.image_ids)}


@dataclass(frozen=True)
class CachedRows:
    """The rows of a list of images, as positions into the shared table (nothing is copied until read)."""

    image_ids: list[str]
    rows: torch.Tensor
    table: RowTable

    @property
    def labels(self) -> torch.Tensor:
        return self.table.labels[self.rows]

    def field(self, name: str) -> torch.Tensor | None:
        """One field for these rows, copied out of the table; None when the cache does not hold it."""
        column = self.table.fields.get(name)
        return None if column is None else column[self.rows]

    @property
    def embedding(self) -> torch.Tensor:
        return self.field("embedding")

    @property
    def cloud(self) -> torch.Tensor:
        return self.field("cloud")

    @property
    def plaintext_cloud(self) -> torch.Tensor | None:
        return self.field("plaintext_cloud")


class PairCache:
    """A cache directory for one pipeline fingerprint; `PairCache.shared` gives one instance per directory."""

    _instances: ClassVar[weakref.WeakValueDictionary[Path, PairCache]] = weakref.WeakValueDictionary()

    def __init__(self, root: Path, description: dict[str, Any]) -> None:
        self.description = {"format": FORMAT_VERSION, **description}
        self.directory = Path(root) / fingerprint(self.description)
        self._present: set[str] | None = None
        self._table: RowTable | None = None
        self._verified: tuple[str, int, int] | None = None  # the pack data whose digest matched its header

    @classmethod
    def shared(cls, root: Path, description: dict[str, Any], formerly: dict[str, Any] | None = None) -> PairCache:
        """The process's one instance for this cache, so every reader maps the same table once. A cache made
        under the description this one was `formerly` named by (an older owsd's) is taken over, rows kept."""
        fresh = cls(root, description)
        if formerly is not None and formerly != description:
            fresh._take_over(cls(root, formerly).directory)
        return cls._instances.setdefault(fresh.directory.resolve(), fresh)

    def _take_over(self, former: Path) -> None:
        """Rename `former` to this cache's folder and record this description in it (once: a process that finds
        it renamed by another, e.g. another rank, goes on)."""
        if self.directory.exists() or not former.is_dir():
            return
        try:
            former.rename(self.directory)
        except OSError:
            if not self.directory.exists():
                raise
            return
        self._write_manifest()
        log.info("cache %s: the cache %s renamed, as this owsd names it", self.directory, former.name)

    @classmethod
    def existing(cls, directory: Path) -> PairCache:
        """A cache folder opened from its manifest (for reading a cache without the config that made it)."""
        description = _manifest(Path(directory))
        if description is None:
            raise DataError(f"cache {directory}: its manifest.json is missing or damaged")
        cache = cls(Path(directory).parent, {k: v for k, v in description.items() if k != "format"})
        if cache.directory.resolve() != Path(directory).resolve():
            raise DataError(f"cache {directory}: its manifest does not match its folder name")
        return cache

    def prepare(self) -> None:
        """Create the directory (its owner's only: rows identify private images) and record what it holds."""
        owner_only_folder(self.directory)
        if _manifest(self.directory) != self.description:  # missing, or damaged: written anew
            self._write_manifest()

    def _write_manifest(self) -> None:
        text = json.dumps(self.description, indent=2, sort_keys=True)
        atomic_write(self.directory / "manifest.json", lambda path: path.write_text(text), OWNER_ONLY_FILE)

    def missing(self, image_ids: list[str]) -> list[str]:
        present = self._ids()
        return [image_id for image_id in image_ids if image_id not in present]

    def write_shard(self, image_ids: list[str], labels: torch.Tensor, fields: dict[str, torch.Tensor]) -> Path:
        """Store one batch of rows; the shard is named by its ids, so a re-run rewrites the same file."""
        name = hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:20]
        path = self.directory / f"shard-{name}.pt"
        rows = {k: v.detach().float().cpu() for k, v in fields.items()}
        shard = {"image_ids": list(image_ids), "labels": labels.cpu(), **rows}
        atomic_torch_save(path, shard, OWNER_ONLY_FILE)
        self.refresh()
        return path

    def refresh(self) -> None:
        """Forget what was read, so the next look sees shards written since (e.g. by other processes)."""
        self._present, self._table = None, None

    def read(self, image_ids: list[str]) -> CachedRows:
        table = self.table()
        row_of = table.row_of
        absent = [image_id for image_id in image_ids if image_id not in row_of]
        if absent:
            raise DataError(
                f"cache {self.directory} lacks {len(absent)} images, e.g. {absent[0]}; "
                "precompute them with `owsd fit` (owsd.precompute.fill_cache)"
            )
        rows = torch.tensor([row_of[image_id] for image_id in image_ids], dtype=torch.long)
        return CachedRows(list(image_ids), rows, table)

    def table(self) -> RowTable:
        """The packed table, after packing any shards written since the last pack."""
        if self._table is None:
            with self._locked():
                if list(self.directory.glob("shard-*.pt")):
                    self._pack()
                self._table = self._map_pack() or RowTable([], torch.zeros(0, dtype=torch.long), {})
        return self._table

    def _ids(self) -> set[str]:
        """Every cached id; read under the lock, so a pack written meanwhile by another process (which drops
        the shards it absorbed) is never half seen."""
        if self._present is None:
            if not self.directory.is_dir():
                return set()
            with self._locked():
                header = self._pack_header()
                present = set(header["image_ids"]) if header else set()
                for path in self.directory.glob("shard-*.pt"):
                    shard = _load_shard(path)
                    present.update(shard["image_ids"] if shard is not None else [])
            self._present = present
        return self._present

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One packer at a time across processes (DDP ranks read the cache at once)."""
        owner_only_folder(self.directory)
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _pack_header(self) -> dict[str, Any] | None:
        headers = sorted(self.directory.glob("pack-*.json"), key=lambda p: int(p.stem.split("-")[1]))
        if not headers:
            return None
        data = headers[-1].with_suffix(".bin")
        try:
            header = json.loads(headers[-1].read_text())
            expected = 4 * len(header["image_ids"]) * sum(header["widths"].values())
            if header.get("checksum", _checksum(header)) != _checksum(header):  # packs before it have none
                raise ValueError("its contents are not those its checksum names")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            set_aside([headers[-1], data], error, RECOMPUTED)  # the header at fault, its data useless without it
            return None
        try:
            if data.stat().st_size != expected:
                raise ValueError(f"it holds {data.stat().st_size} bytes, its header says {expected}")
            self._verify(data, header.get("sha256"))
        except (OSError, ValueError) as error:
            set_aside([data, headers[-1]], error, RECOMPUTED)
            return None
        return header

    def _verify(self, data: Path, digest: str | None) -> None:
        """The pack's bytes against the digest its header records (packs written before it have none), once
        per file version and process: a flipped byte would otherwise be a silently wrong embedding."""
        status = data.stat()
        version = (data.name, status.st_mtime_ns, status.st_size)
        if digest is None or self._verified == version:
            return
        if file_sha256(data) != digest:
            raise ValueError("its bytes are not those its header's sha256 names")
        self._verified = version

    def _pack(self) -> None:
        """Write the old pack's rows and every shard's new rows into the next pack, a field at a time, then
        drop what it absorbed. Rows stream through: memory holds one shard, never the table."""
        header, old = self._pack_header(), self._map_pack()
        shards = sorted(self.directory.glob("shard-*.pt"))
        ids, labels = list(old.image_ids) if old else [], [old.labels] if old else []
        seen, take = set(ids), []
        for path in shards:
            shard = _load_shard(path)
            if shard is None:  # set aside: its images are computed again
                continue
            rows = [row for row, image_id in enumerate(shard["image_ids"]) if image_id not in seen]
            seen.update(shard["image_ids"])
            ids += [shard["image_ids"][row] for row in rows]
            labels.append(shard["labels"][rows])
            take.append((path, rows))
        if not take:
            return
        widths = {name: int(t.shape[1]) for name, t in old.fields.items()} if old else _widths(take[0][0])
        generation = header["generation"] + 1 if header else 0
        data_path = self.directory / f"pack-{generation}.bin"

        def write(path: Path) -> None:
            with open(path, "wb") as handle:
                for name in widths:
                    if old is not None:
                        for chunk in old.fields[name].split(_CHUNK_ROWS):
                            handle.write(chunk.numpy().tobytes())
                    for shard_path, rows in take:
                        handle.write(_load_shard(shard_path)[name][rows].float().contiguous().numpy().tobytes())

        atomic_write(data_path, write, OWNER_ONLY_FILE)
        new_header = {
            "generation": generation,
            "sha256": file_sha256(data_path),
            "image_ids": ids,
            "labels": torch.cat(labels).tolist(),
            "widths": widths,
        }
        new_header["checksum"] = _checksum(new_header)
        header_path = self.directory / f"pack-{generation}.json"
        atomic_write(header_path, lambda p: p.write_text(json.dumps(new_header)), OWNER_ONLY_FILE)
        for path in [*shards, *self.directory.glob("pack-*")]:
            if path.name not in (data_path.name, f"pack-{generation}.json") and path.suffix != ".damaged":
                path.unlink(missing_ok=True)  # a reader still mapping an old pack keeps its pages
        log.info("cache %s: packed %d rows", self.directory, len(ids))

    def _map_pack(self) -> RowTable | None:
        header = self._pack_header()
        if header is None:
            return None
        count, widths = len(header["image_ids"]), header["widths"]
        total = count * sum(widths.values())
        path = self.directory / f"pack-{header['generation']}.bin"
        flat = torch.from_file(str(path), shared=False, size=total, dtype=torch.float32)  # mapped, not read
        fields, offset = {}, 0
        for name, width in widths.items():
            fields[name] = flat[offset : offset + count * width].view(count, width)
            offset += count * width
        return RowTable(header["image_ids"], torch.tensor(header["labels"], dtype=torch.long), fields)


def _checksum(header: dict[str, Any]) -> str:
    """sha256 of a pack header's other fields: a flipped byte in an image id or a label is caught on reading."""
    rest = {name: value for name, value in header.items() if name != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _manifest(directory: Path) -> dict[str, Any] | None:
    """What a cache folder's manifest.json records, or None where it is missing or cannot be read."""
    try:
        return json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _load_shard(path: Path) -> dict[str, Any] | None:
    """A shard's rows, or None for a damaged shard (set aside)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001  (torch reports a cut or overwritten archive in many ways)
        set_aside([path], error, RECOMPUTED)
        return None


def _widths(shard_path: Path) -> dict[str, int]:
    shard = _load_shard(shard_path)
    return {name: int(shard[name].shape[1]) for name in ROW_FIELDS if shard.get(name) is not None}
