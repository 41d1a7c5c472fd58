"""The attack suite's settings (the `attack:` section of a config), checked before any work starts."""

from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

from annotated_types import Ge

from owsd.components.scrambler import Defences
from owsd.errors import ConfigError
from owsd.ranges import AtLeastTwo, Count, OpenFraction, PositiveNumber, check_ranges
from owsd.security.assessment_keys import AssessmentKeys

AttackName = Literal["clustering", "label_leakage", "inversion", "reconstruction", "key_recovery", "linkability"]
ATTACKS: tuple[str, ...] = get_args(AttackName)


@dataclass(frozen=True)
class Resources:
    """How much the adversary holds, per threat model: each list is one curve's x axis.

    Args:
        submissions: T1, scrambled images (and cloud answers) seen under the key.
        labels_per_class: T2, true labels known per class (all submissions seen).
        pairs: T3, known (original, scrambled) pairs for inversion and reconstruction.
        key_recovery_pairs: T3, known pairs for key recovery (the costliest attack).
        held_out: T3, images never among the pairs, on which T3 attacks are scored.
        public: labelled images the adversary owns (never submitted), for the inversion's probe.
    """

    submissions: list[Count] = field(default_factory=lambda: [100, 300, 1000, 3000])
    labels_per_class: list[Count] = field(default_factory=lambda: [1, 3, 10, 30, 100])
    pairs: list[Count] = field(default_factory=lambda: [30, 100, 300, 1000, 3000])
    key_recovery_pairs: list[Count] = field(default_factory=lambda: [10, 30, 100])
    held_out: AtLeastTwo = 500
    public: AtLeastTwo = 500

    def __post_init__(self) -> None:
        check_ranges(self, "attack.resources")
        for name in ("submissions", "labels_per_class", "pairs", "key_recovery_pairs"):
            values = getattr(self, name)
            if not values or sorted(values) != list(values):
                raise ConfigError(f"attack.resources.{name}={values} must be ascending whole numbers ≥ 1")


@dataclass(frozen=True)
class ReconstructionSettings:
    """The paper's autoencoder attack (§5.3): scrambled image at `input_size` → original at `output_size`."""

    input_size: int = 64
    output_size: int = 32
    epochs: Count = 15
    width: Count = 16

    def __post_init__(self) -> None:
        check_ranges(self, "attack.reconstruction")
        for name in ("input_size", "output_size"):
            size = getattr(self, name)
            if size < 8 or size & (size - 1):
                raise ConfigError(f"attack.reconstruction.{name}={size} must be a power of two ≥ 8")


@dataclass(frozen=True)
class KeyRecoverySettings:
    """Fitting the public generator architecture to known pairs (Adam at `lr`, `epochs` passes); `channels`
    lists the widths attacked (unset: the configured generator's and 16), `invert_images` how many held-out
    images are inverted, in `invert_steps` steps (pixel R² is scored on every held-out image)."""

    channels: list[Annotated[int, Ge(8)]] | None = None
    epochs: Count = 10
    lr: PositiveNumber = 1e-3
    invert_images: Count = 10
    invert_steps: Count = 100

    def __post_init__(self) -> None:
        check_ranges(self, "attack.key_recovery")
        if self.channels == []:
            raise ConfigError("attack.key_recovery.channels=[] lists no width: leave it unset for the defaults")


STANDARD_DEFENCES = (
    Defences(embedding_noise=1.0),
    Defences(embedding_noise=4.0),
    Defences(embedding_noise=16.0),
    Defences(embedding_dropout=0.5),
    Defences(rotate_every=500),
)


@dataclass(frozen=True)
class AttackSettings:
    """What `owsd attack` measures.

    Args:
        attacks: which attacks to run (all by default).
        images_per_label: images per label the suite draws from the source (all it holds when unset);
            independent of `data.split`, which keeps deciding the IIN's own training and test images.
        resources: the x axes of the curves.
        pixel_size: side to which scrambled images are downsampled for pixel-based attacks.
        reconstruction, key_recovery: those attacks' own settings.
        linkability_images: images scrambled again after light changes (crop, JPEG, resize).
        defences: scrambler defences measured against the attacks and by the IIN's test accuracy; unset, the
            standard sweep `STANDARD_DEFENCES` (noise σ 1, 4, 16; dropout 0.5; a new key every 500 images).
        margin: an attack breaks a key once its score exceeds chance by more than this (accuracy, NMI,
            identification, SSIM and pixel R² are all on a scale where 1 is a perfect attack).
        seed: seed of every draw the suite makes.
        keys: the fresh keys the suite scrambles under (never the config's key file): how many, and whether
            they may be sent to a cloud outside this process.
    """

    attacks: list[AttackName] = field(default_factory=lambda: list(ATTACKS))
    images_per_label: Count | None = None
    resources: Resources = Resources()
    pixel_size: AtLeastTwo = 32
    reconstruction: ReconstructionSettings = ReconstructionSettings()
    key_recovery: KeyRecoverySettings = KeyRecoverySettings()
    linkability_images: AtLeastTwo = 300
    defences: list[Defences] | None = None
    margin: OpenFraction = 0.05
    seed: int = 0
    keys: AssessmentKeys = AssessmentKeys()

    def __post_init__(self) -> None:
        if self.defences is None:  # resolved here: a default list of dataclasses would not dump into a config
            object.__setattr__(self, "defences", list(STANDARD_DEFENCES))
        unknown = [name for name in self.attacks if name not in ATTACKS]
        if unknown:
            raise ConfigError(f"attack.attacks: unknown {unknown}; choose from {list(ATTACKS)}")
        check_ranges(self, "attack")
        k, r = self.key_recovery, self.resources
        if k.invert_images > r.held_out:
            raise ConfigError(f"attack.key_recovery.invert_images={k.invert_images} exceeds resources.held_out")

    def check_fits(self, images: int, smallest_class: int) -> None:
        """Refuse resources the data cannot supply for the chosen attacks, naming the setting (before any runs)."""
        r, chosen = self.resources, set(self.attacks)
        checks = []
        if chosen & {"inversion", "reconstruction", "key_recovery"}:
            checks.append(
                ("resources.held_out + resources.public", r.held_out + r.public, images - 2, "images, less two")
            )
            t3_pool = images - r.held_out - r.public
            if chosen & {"inversion", "reconstruction"}:
                checks.append(("resources.pairs", max(r.pairs), t3_pool, "images outside held_out and public"))
            if "key_recovery" in chosen:
                checks.append(
                    (
                        "resources.key_recovery_pairs",
                        max(r.key_recovery_pairs),
                        t3_pool,
                        "images outside held_out and public",
                    )
                )
        if "clustering" in chosen:
            checks.append(("resources.submissions", max(r.submissions), images, "images"))
        if "label_leakage" in chosen:
            checks.append(
                (
                    "resources.labels_per_class",
                    max(r.labels_per_class),
                    smallest_class - 1,
                    "images in the smallest class, less one",
                )
            )
        if "linkability" in chosen:
            checks.append(("linkability_images", self.linkability_images, images, "images"))
        for setting, wanted, available, what in checks:
            if wanted > available:
                raise ConfigError(f"attack.{setting} asks for {wanted}, but the data holds {available} {what}")
