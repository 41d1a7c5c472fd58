"""The keyed scrambler: a frozen, randomly initialised DCGAN generator (paper §3, §4.1).

Its weights are expanded from the key with SHAKE-256, and scaled (He-style, per layer fan-in) so the
signal neither dies nor explodes through the stack: the scrambled image spans the pixel range instead
of collapsing to a flat grey, as DCGAN's usual N(0, 0.02) init does. There is no batch norm, so an
image's scrambled bytes never depend on the batch it is in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from owsd.components.key import Key

_UNIFORM_BITS = 24


@dataclass(frozen=True)
class ScrambledImages:
    """uint8 N×3×H×W images that came out of a keyed generator: the only thing a cloud accepts.

    `key_fingerprint` names the key file they were made with (a `Scrambler`'s root key, whatever subkey each
    encoder or rotation uses), so the key ledger counts them against that key; `image_ids` name them in it.
    """

    pixels: torch.Tensor
    key_fingerprint: str
    image_ids: tuple[str, ...] | None = None


@contextlib.contextmanager
def exact_arithmetic(device: torch.device) -> Iterator[None]:
    """float32 as IEEE defines it on `device`: autocast off (where it exists; not on `meta`) and, on CUDA,
    no TF32 in cuDNN's convolutions (torch's default on Ampere and later), so the bytes sent are the same
    on every device and at every precision."""
    with contextlib.ExitStack() as stack:
        if torch.amp.autocast_mode.is_autocast_available(device.type):
            stack.enter_context(torch.autocast(device.type, enabled=False))
        if device.type == "cuda":
            conv = torch.backends.cudnn.conv
            previous, conv.fp32_precision = conv.fp32_precision, "ieee"
            stack.callback(setattr, conv, "fp32_precision", previous)
        yield


class ScramblingGenerator(nn.Module):
    """Embedding N×D → scrambled image N×3×S×S (uint8 via `scramble`).

    Args:
        key: the (sub)key whose expansion becomes every weight.
        embedding_dim: D, the encoder's embedding size.
        image_size: S, a power of two ≥ 8 (256 in the paper).
        base_channels: channels of the first 4×4 feature map; halved at each doubling of size.
    """

    def __init__(
        self,
        key: Key,
        embedding_dim: int,
        image_size: int = 256,
        base_channels: int = 512,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        doublings = math.log2(image_size / 4)
        if image_size < 8 or doublings != int(doublings):
            raise ValueError(f"image_size must be a power of two ≥ 8, got {image_size}")
        channels = [max(base_channels >> i, 8) for i in range(int(doublings))]
        on = {"bias": False, "device": device}
        layers: list[nn.Module] = [nn.ConvTranspose2d(embedding_dim, channels[0], 4, 1, 0, **on), nn.ReLU()]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, **on), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1, **on), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.key_fingerprint = key.fingerprint
        self._expand_weights(key)
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def _expand_weights(self, key: Key) -> None:
        """SHAKE-256 runs on the host: each layer's weights are drawn there, then copied to its device."""
        convs = [m for m in self.net if isinstance(m, nn.ConvTranspose2d)]
        for index, conv in enumerate(convs):
            c_in, _, k, _ = conv.weight.shape
            # Taps reaching one output pixel: the first layer sees a 1×1 input, the others stride 2.
            fan_in = c_in if index == 0 else c_in * (k // conv.stride[0]) ** 2
            std = math.sqrt(2.0 / fan_in)  # He scale: ReLU activations keep their variance
            raw = key.expand(f"generator/conv{index}", 4 * conv.weight.numel())
            bits = torch.frombuffer(bytearray(raw), dtype=torch.int32) & ((1 << _UNIFORM_BITS) - 1)
            uniform = (bits.double() + 0.5) / (1 << _UNIFORM_BITS)  # in (0, 1)
            weight = (uniform * 2 - 1) * (math.sqrt(3) * std)  # zero mean, standard deviation `std`
            conv.weight.copy_(weight.view_as(conv.weight))

    @staticmethod
    def standardise(embeddings: torch.Tensor) -> torch.Tensor:
        """Each embedding on its own to zero mean, unit std: scale-free and independent of the batch."""
        z = embeddings.float().flatten(1)
        return (z - z.mean(1, keepdim=True)) / (z.std(1, keepdim=True) + 1e-6)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Float images in [-1, 1]."""
        with exact_arithmetic(embeddings.device):
            return self.net(self.standardise(embeddings)[:, :, None, None])

    @torch.inference_mode()
    def to_pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Already standardised (and perhaps perturbed) inputs → uint8 images, in float32 whatever the autocast
        around it: the bytes sent must not depend on the precision the encoders and the cloud run at."""
        with exact_arithmetic(z.device):
            images = self.net(z.float()[:, :, None, None])
        return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    def scramble(self, embeddings: torch.Tensor) -> ScrambledImages:
        """The 8-bit RGB images that may leave the organisation."""
        return ScrambledImages(self.to_pixels(self.standardise(embeddings)), self.key_fingerprint)
