"""T3 reconstruction (paper §5.3–5.4): learn scrambled → original from known pairs, score on held-out images.

The adversary knows N (original, scrambled) pairs and trains an autoencoder-style network on them: a DCGAN
discriminator-style encoder (plus a residual block, as the paper's) down to a bottleneck vector, then a DCGAN
generator-style decoder up to the original. Feeding it the original itself instead of the scrambled image gives the
paper's "plaintext" reference; predicting the mean training image gives what knowing only the data's average buys.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure

_EVAL_BATCH = 256


def _log2_size(size: int, name: str) -> int:
    doublings = math.log2(size)
    if size < 8 or doublings != int(doublings):
        raise ValueError(f"{name} must be a power of two ≥ 8, got {size}")
    return int(doublings)


class _Residual(nn.Module):
    """Two 3×3 convolutions added back to their input: more depth without losing what the encoder already kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


class ReconstructionNet(nn.Module):
    """Image N×3×in×in in [0, 1] → image N×out_channels×out×out in [0, 1].

    Channels double at each halving (from `width`) and halve at each doubling (down to `width`), capped at 8·width,
    as in DCGAN; both ends meet at a 4×4 map that is squeezed through a `bottleneck`-dim vector.
    """

    def __init__(self, in_size: int, out_size: int, out_channels: int = 3, width: int = 32, bottleneck: int = 256):
        super().__init__()
        downs = _log2_size(in_size, "in_size") - 2  # halvings down to 4×4
        ups = _log2_size(out_size, "out_size") - 2  # doublings up from 4×4
        enc = [width * min(2**i, 8) for i in range(downs)]
        layers: list[nn.Module] = [nn.Conv2d(3, enc[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(enc, enc[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        layers += [_Residual(enc[-1]), nn.Conv2d(enc[-1], bottleneck, 4, 1, 0)]
        self.encoder = nn.Sequential(*layers)

        dec = [width * min(2**i, 8) for i in reversed(range(ups))]
        layers = [nn.ConvTranspose2d(bottleneck, dec[0], 4, 1, 0, bias=False), nn.BatchNorm2d(dec[0]), nn.ReLU()]
        for c_in, c_out in zip(dec, dec[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(dec[-1], out_channels, 4, 2, 1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images.float() * 2 - 1))


def train_reconstruction(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
) -> ReconstructionNet:
    """Fit a `ReconstructionNet` from `inputs` (N×3×s×s) to `targets` (N×C×t×t), both in [0, 1]; Adam on MSE.

    The returned net is in eval mode, so its batch norm uses running statistics: a held-out image's
    reconstruction never depends on the batch it is scored in.
    """
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ReconstructionNet(inputs.shape[-1], targets.shape[-1], targets.shape[1], width)
    order = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=order).split(batch_size):
            if len(batch) < 2:  # batch norm cannot normalise a single image
                continue
            loss = F.mse_loss(model(inputs[batch]), targets[batch].float())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return model.eval()


def _scores(predict: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor) -> dict[str, float]:
    """Mean MSE and SSIM of `predict(batch indices)` against `targets`, in batches to bound memory."""
    size = min(targets.shape[-2:])
    kernel = min(11, (size // 2 - 1) | 1)  # an odd window that leaves a valid region inside small images
    sigma = 1.5 * kernel / 11  # torchmetrics sizes its Gaussian window from sigma: 1.5 ↔ 11, as the default
    squared_error = ssim_sum = 0.0
    for batch in torch.arange(len(targets)).split(_EVAL_BATCH):
        truth = targets[batch].float()
        guess = predict(batch).expand_as(truth)
        squared_error += F.mse_loss(guess, truth, reduction="sum").item()
        ssim = structural_similarity_index_measure(
            guess, truth, data_range=1.0, kernel_size=kernel, sigma=sigma, reduction="none"
        )
        ssim_sum += ssim.sum().item()
    return {"mse": squared_error / targets.numel(), "ssim": ssim_sum / len(targets)}


@torch.inference_mode()
def reconstruction_scores(model: ReconstructionNet, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """{"mse", "ssim"} of the model's reconstructions of `targets` from `inputs` (held-out pairs)."""
    model.eval()
    return _scores(lambda batch: model(inputs[batch]), targets)


@torch.inference_mode()
def mean_image_scores(train_targets: torch.Tensor, test_targets: torch.Tensor) -> dict[str, float]:
    """{"mse", "ssim"} of always answering the mean training image: the chance level of a reconstruction."""
    mean = train_targets.float().mean(0, keepdim=True)
    return _scores(lambda batch: mean, test_targets)
