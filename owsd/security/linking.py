"""Linkability (T1): the same private image, or a lightly changed copy, submitted twice. Can the cloud tell?

Copies are new submissions: they get their own image ids, so randomised defences draw fresh noise for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from owsd.attacks.common import pixel_features
from owsd.attacks.linkability import CHANGES, match_rate
from owsd.security.curves import Curve

log = logging.getLogger(__name__)

FALSE_MATCH_RATE = 0.01

Scramble = Callable[[torch.Tensor, list[str]], torch.Tensor]  # embeddings, image ids → uint8 scrambled images


def changed_embeddings(images: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each light change of the plaintext images, embedded by the (public) encoder."""
    return {name: embed(change(images)) for name, change in CHANGES.items()}


def linkability_curve(
    embeddings: dict[str, torch.Tensor],
    image_ids: list[str],
    scramble: Scramble,
    other_key: Scramble | None,
    pixel_size: int,
    reference: bool = True,
) -> Curve:
    """Match rate at 1% false matches between each original's submission and its changed copy's.

    `embeddings["original"]` are the originals' embeddings; the others are those of each change. Scrambled:
    both under the key; "another key" (with `other_key`): the copy under a second key, as after rotation.
    Unscrambled: the embeddings themselves compared.
    """
    first = pixel_features(scramble(embeddings["original"], image_ids), pixel_size)
    curve = Curve("linkability", "T1", "change before resubmission", list(CHANGES), "match_rate", [], [], [],
                  budget=False)  # fmt: skip
    if other_key is not None:
        curve.defences["another key"] = []
    for change in CHANGES:
        copy_ids = [f"{image_id}#copy-{change}" for image_id in image_ids]
        second = pixel_features(scramble(embeddings[change], copy_ids), pixel_size)
        curve.scrambled.append(match_rate(first, second, FALSE_MATCH_RATE)["match_rate"])
        unscrambled = match_rate(embeddings["original"], embeddings[change], FALSE_MATCH_RATE)["match_rate"]
        curve.unscrambled.append(unscrambled if reference else None)
        curve.chance.append(FALSE_MATCH_RATE if reference else None)
        if other_key is not None:
            rotated = pixel_features(other_key(embeddings[change], copy_ids), pixel_size)
            curve.defences["another key"].append(match_rate(first, rotated, FALSE_MATCH_RATE)["match_rate"])
        log.info("linkability, %s copy: match rate %.3f", change, curve.scrambled[-1])
    return curve
