"""The `analysis:` section of a config (`owsd analyze`)."""

from __future__ import annotations

from dataclasses import dataclass

from owsd.errors import ConfigError
from owsd.security.assessment_keys import AssessmentKeys


@dataclass(frozen=True)
class AnalysisSettings:
    """Args:
    grid_images: originals shown beside their scrambled images.
    pca_labels: the two labels (names) whose cloud vectors are plotted; the first two when unset.
    pca_images: images per label in the PCA plot (the paper: 50).
    relu_images: images whose generator activations are counted.
    keys: the fresh keys the analysis scrambles under (never the config's key file).
    """

    grid_images: int = 16
    pca_labels: list[str] | None = None
    pca_images: int = 50
    relu_images: int = 200
    keys: AssessmentKeys = AssessmentKeys()

    def __post_init__(self) -> None:
        for name in ("grid_images", "pca_images", "relu_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"analysis.{name}={getattr(self, name)} must be at least 1")
