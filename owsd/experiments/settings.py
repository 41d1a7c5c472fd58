"""The `experiment:` section of a config: which of the paper's tables a config reproduces, and what
`owsd run` varies over its repetitions (seeds, training images per label, ensemble size, IIN recipe)."""

from dataclasses import dataclass, field
from typing import Any, Literal

from owsd.components.iin import IINInput
from owsd.errors import ConfigError
from owsd.ranges import Count, Decay, Fraction, NonNegativeInt, PositiveNumber, check_ranges

# The paper's §4 use cases, one report table each: 1 same labels as the cloud, 2 label subsets,
# 3 labels the cloud never saw, 4 ensembles of encoders, 5 images per label (Figure 2).
# `regime` is owsd's own: the search for a setting where the cloud adds to what sends nothing (no paper table).
Protocol = Literal["uc1", "uc2", "uc3", "uc4", "uc5", "regime"]


@dataclass(frozen=True)
class Recipe:
    """How an IIN is trained: `name` plus overrides of the `model:` section and the epoch limit.

    The default is the config's own recipe (the paper's: lr 1e-4, decay 0.95, ≤40 epochs); a tuned recipe,
    found by a sweep, sits beside it in the report.
    """

    name: str = "paper"
    hidden_size: Count | None = None
    dropout: Fraction | None = None
    lr: PositiveNumber | None = None
    lr_decay: Decay | None = None
    patience: NonNegativeInt | None = None
    max_epochs: Count | None = None

    def __post_init__(self) -> None:
        check_ranges(self, f"experiment.recipes[{self.name}]")

    @property
    def model_overrides(self) -> dict[str, Any]:
        names = ("hidden_size", "dropout", "lr", "lr_decay", "patience")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass(frozen=True)
class ExperimentSettings:
    """What `owsd run` repeats and how `owsd report` files the results.

    Args:
        protocol: the use case, i.e. the report table the runs go into.
        row: the row's name in that table (e.g. `CIFAR-10`, `10 labels`); defaults to the config's file name.
        paper_row: the published row this reproduces or stands in for (a key of `owsd.experiments.paper.PAPER`).
        same_data_as_paper: whether the private data and the cloud's are the paper row's own (same datasets, same
            label relation); only then does `owsd report` put a difference beside the paper's number.
        seeds: one run per seed: a new split, and a new label draw where `data.split.labels.count` is set.
        inputs: IIN inputs trained on every run; `embedding` is what the cloud is measured against.
        linear_probe: also fit logistic regression on the embedding (sends nothing).
        encoder_head: also score the encoder's own classifier head; only where the labels are its classes.
        train_per_label: training images per label to sweep (use case 5 and the learnability sweep); the
            test and validation images stay those of the split.
        ensemble_sizes: use case 4: IINs on the first 1, 2, … encoders of `data.encoders`, from one cache.
        recipes: IIN recipes run on every seed beside the config's own `model:` section (named `paper`).
        paper_recipe: whether the config's own `model:` section runs as recipe `paper` too (off: `recipes` only).
        regime: for the regime search, the run's place in it: `encoder` and `cloud`, as the figure names them
            (e.g. `{encoder: Lite0, cloud: CNN on 2,000 digits}`).
    """

    protocol: Protocol = "uc1"
    row: str | None = None
    paper_row: str | None = None
    same_data_as_paper: bool = False
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    inputs: list[IINInput] = field(default_factory=lambda: ["embedding+cloud", "embedding"])
    linear_probe: bool = True
    encoder_head: bool = False
    train_per_label: list[Count] | None = None
    ensemble_sizes: list[Count] | None = None
    recipes: list[Recipe] = field(default_factory=list)
    paper_recipe: bool = True
    regime: dict[str, str] | None = None

    def __post_init__(self) -> None:
        check_ranges(self, "experiment")
        if not self.seeds:
            raise ConfigError("experiment.seeds is empty: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"experiment.seeds={self.seeds} repeats a seed")
        if not self.inputs:
            raise ConfigError("experiment.inputs is empty: give at least one IIN input")
        for name in ("train_per_label", "ensemble_sizes"):
            values = getattr(self, name)
            if values == []:
                raise ConfigError(f"experiment.{name}=[] lists nothing: leave it unset, or list numbers ≥ 1")
        if self.regime is not None and set(self.regime) != {"encoder", "cloud"}:
            raise ConfigError(f"experiment.regime={self.regime} must name exactly `encoder` and `cloud`")
        if not self.all_recipes:
            raise ConfigError("experiment.paper_recipe is false and experiment.recipes is empty: no IIN to train")
        names = [recipe.name for recipe in self.all_recipes]
        if len(set(names)) != len(names):
            raise ConfigError(f"experiment.recipes: names must differ from each other and from `paper`, got {names}")

    @property
    def all_recipes(self) -> list[Recipe]:
        return [Recipe()] * self.paper_recipe + self.recipes
