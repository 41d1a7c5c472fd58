"""The scrambler as configured: key, generator size and the defences, applied per submitted image.

`ScramblingGenerator` is the paper's keyed network. `Scrambler` wraps one per encoder (and per key, when
keys rotate) and adds the defences this project measures beyond the paper:

- `embedding_noise` σ: Gaussian noise added to the standardised embedding before it is scrambled;
- `embedding_dropout` p: each embedding entry zeroed with probability p (the rest scaled by 1/(1-p));
- `rotate_every` K: a new key for every K images, so an adversary sees at most K per key. Images are
  dealt to keys in a keyed random order of the source (as a user submitting in an order unrelated to the
  labels would); in the source's own order, a sorted dataset would let key changes mark label boundaries.
  Precompute submits them in that order (`rotation_order`), one key after the other, as a user rotating
  every K submissions does: a batch of B then needs at most ⌈B/K⌉ + 1 generators (two when K ≥ B), and a
  scrambler keeps only those of its last batch, so device memory stays flat however many keys rotate (each
  generator is ≈ 78 MB at 256 px and 512 channels).

The randomness of noise and dropout is drawn per image from the key and the image's id: unpredictable to
the cloud, yet reproducible, so the cache stays valid and an attack can regenerate exactly what was sent.
"""

from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from owsd.components.generator import ScrambledImages, ScramblingGenerator
from owsd.components.key import Key
from owsd.components.ledger import DEFAULT_LEDGER
from owsd.errors import ConfigError
from owsd.ranges import Count, Fraction, NonNegativeInt, NonNegativeNumber, check_ranges


@dataclass(frozen=True)
class Defences:
    """Measured additions to the paper's scrambler; all off by default (the paper's OWSD).

    Args:
        embedding_noise: σ of the Gaussian noise added to each standardised embedding (0: none).
        embedding_dropout: probability of zeroing each embedding entry before scrambling (0: none).
        rotate_every: use a new key for every block of this many images (None: one key).
    """

    embedding_noise: NonNegativeNumber = 0.0
    embedding_dropout: Fraction = 0.0
    rotate_every: Count | None = None

    def __post_init__(self) -> None:
        check_ranges(self, "defences")

    @property
    def active(self) -> dict[str, Any]:
        """The defences that are on (what changes the scrambled bytes, for the cache fingerprint)."""
        return {name: value for name, value in asdict(self).items() if value not in (0.0, None)}

    @property
    def randomised(self) -> bool:
        return self.embedding_noise > 0 or self.embedding_dropout > 0


@dataclass(frozen=True)
class ScramblerSettings:
    """The secret key and the generator it drives.

    Args:
        key_file: the secret key (32 bytes, mode 0600); only its path ever appears in a config.
        create_key: create `key_file` if it does not exist (for demos; otherwise use `owsd key new`).
        size: side of the scrambled images sent to the cloud (256 in the paper).
        channels: channels of the generator's first feature map.
        defences: see `Defences`.
        ledger_file: the key ledger, every scrambled image sent per key fingerprint: a SQLite file for one
            machine, or a `postgresql://user@host/db` URL (no password in it) for several that share keys.
        key_budget: images the cloud may see under one key; beyond it nothing is sent (None: no limit).
        key_budget_file: instead of `key_budget`, the T1 budget of a `key_budget.json` from `owsd attack`.
    """

    key_file: Path
    create_key: bool = False
    size: Count = 256
    channels: Count = 512
    defences: Defences = Defences()
    ledger_file: str = str(DEFAULT_LEDGER)
    key_budget: NonNegativeInt | None = None
    key_budget_file: Path | None = None

    def __post_init__(self) -> None:
        if self.key_budget is not None and self.key_budget_file is not None:
            raise ConfigError("give data.scrambler.key_budget or data.scrambler.key_budget_file, not both")
        check_ranges(self, "data.scrambler")


class Scrambler(nn.Module):
    """Embeddings of one encoder → the scrambled images sent for them, defences applied.

    Args:
        key: the run's key; each (encoder, rotation) pair gets its own derived subkey.
        encoder_index: which encoder of an ensemble these embeddings come from.
        embedding_dim: that encoder's embedding width.
        settings: generator size and defences.
        source_size: images in the source (needed to deal them to rotating keys).
    """

    def __init__(
        self, key: Key, encoder_index: int, embedding_dim: int, settings: ScramblerSettings, source_size: int = 0
    ) -> None:
        super().__init__()
        self.key, self.encoder_index, self.embedding_dim = key, encoder_index, embedding_dim
        self.settings, self.source_size = settings, source_size
        self.generators = nn.ModuleDict()  # built on first use: a rotating key makes one per block

    def generator(self, rotation: int, device: torch.device | None = None) -> ScramblingGenerator:
        """The generator of key number `rotation` (without rotation, 0: the paper's single key), built on
        `device` (where the embeddings are) when it is not kept from the last batch."""
        name = str(rotation)
        if name not in self.generators:
            rotating = self.settings.defences.rotate_every is not None  # then even block 0 gets a fresh key
            context = f"generator/{self.encoder_index}" + (f"/rotation/{rotation}" if rotating else "")
            self.generators[name] = ScramblingGenerator(
                self.key.derive(context), self.embedding_dim, self.settings.size, self.settings.channels, device
            )
        return self.generators[name]

    def rotation_order(self, positions: list[int]) -> list[int]:
        """Indices into `positions` in the order their keys rotate (as given without rotation): a batch of B
        cut in this order holds at most ⌈B/K⌉ + 1 keys."""
        if not self.settings.defences.rotate_every or not positions:
            return list(range(len(positions)))
        self.rotation_of(positions)  # checks the range
        rank = self._keyed_source_order
        return sorted(range(len(positions)), key=lambda index: rank[positions[index]])

    def rotation_of(self, positions: list[int]) -> list[int]:
        """Key number of each source position: its rank in a keyed shuffle of the source, per block of K."""
        every = self.settings.defences.rotate_every
        if not every:
            return [0] * len(positions)
        if not 0 <= min(positions) <= max(positions) < self.source_size:
            raise ValueError(f"positions must lie in [0, {self.source_size}) to rotate keys")
        rank = self._keyed_source_order
        return [rank[position] // every for position in positions]

    @cached_property
    def _keyed_source_order(self) -> list[int]:
        """Each source position's rank in a shuffle drawn from the key (on the host, once)."""
        seed = int.from_bytes(self.key.expand("rotation/order", 8), "little") >> 1
        return torch.randperm(self.source_size, generator=torch.Generator().manual_seed(seed)).tolist()

    def perturb(self, embeddings: torch.Tensor, image_ids: list[str]) -> torch.Tensor:
        """Standardised embeddings with each image's own keyed noise and dropout applied."""
        defences = self.settings.defences
        z = ScramblingGenerator.standardise(embeddings)
        if not defences.randomised:
            return z
        noise, keep = self._keyed_perturbation(z.shape[1], image_ids)
        noise, keep = noise.to(z.device), keep.to(z.device)
        return z * keep / (1 - defences.embedding_dropout) + defences.embedding_noise * noise

    def _keyed_perturbation(self, width: int, image_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image, Gaussian noise and a dropout mask drawn on the host from the key and the image's id:
        the same numbers on every device, so the cache and the attacks' regenerated bytes stay exact."""
        noise, keep = [], []
        for image_id in image_ids:
            seed = int.from_bytes(self.key.expand(f"defence/{self.encoder_index}/{image_id}", 8), "little") >> 1
            rng = torch.Generator().manual_seed(seed)
            noise.append(torch.randn(width, generator=rng))
            keep.append(torch.rand(width, generator=rng) >= self.settings.defences.embedding_dropout)
        return torch.stack(noise), torch.stack(keep)

    @torch.inference_mode()
    def scramble(self, embeddings: torch.Tensor, image_ids: list[str], positions: list[int]) -> ScrambledImages:
        """The uint8 images sent for these embeddings; `positions` (in the source) pick the rotating key."""
        z = self.perturb(embeddings, image_ids)
        rotations = self.rotation_of(positions)
        for name in [name for name in self.generators if int(name) not in rotations]:
            del self.generators[name]  # memory flat in the number of keys: only this batch's are kept
        if len(set(rotations)) <= 1:  # one key for the whole batch: no scatter
            pixels = self.generator(rotations[0] if rotations else 0, z.device).to_pixels(z)
            return ScrambledImages(pixels, self.key.fingerprint, tuple(image_ids))
        size = self.settings.size
        pixels = torch.empty(len(z), 3, size, size, dtype=torch.uint8, device=z.device)
        for rotation in sorted(set(rotations)):
            rows = torch.tensor([i for i, r in enumerate(rotations) if r == rotation], device=z.device)
            pixels[rows] = self.generator(rotation, z.device).to_pixels(z[rows])
        return ScrambledImages(pixels, self.key.fingerprint, tuple(image_ids))  # the key file's, for the ledger
