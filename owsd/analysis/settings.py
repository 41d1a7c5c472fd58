"""The `analysis:` section of a config (`owsd analyze`)."""

from dataclasses import dataclass

from owsd.ranges import Count, check_ranges
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

    grid_images: Count = 16
    pca_labels: list[str] | None = None
    pca_images: Count = 50
    relu_images: Count = 200
    keys: AssessmentKeys = AssessmentKeys()

    def __post_init__(self) -> None:
        check_ranges(self, "analysis")
