"""`owsd fit --config imagenet_subset100.yaml` from any folder: a config shipped with owsd, found by its name.

The configs are `lightning_configs/` of the checkout owsd is installed from (`pip install -e .`); a name
given to `--config` that is no file here is looked up there, by its last path parts (`demo.yaml`,
`uc1/imagenet.yaml`), and the command says which file it took."""

import logging
from pathlib import Path

from owsd.commands.parse_errors import config_arguments
from owsd.errors import ConfigError

SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "lightning_configs"
log = logging.getLogger("owsd")


def with_shipped_configs(arguments: list[str]) -> list[str]:
    """`arguments` with each `--config NAME` that is no file here replaced by the shipped config it names."""
    found = list(arguments)
    for index, before, name in config_arguments(arguments):
        found[index] = before + _shipped(name)
    return found


def _shipped(name: str) -> str:
    wanted = Path(name)
    if wanted.exists() or wanted.is_absolute() or wanted.suffix not in (".yaml", ".yml"):
        return name
    parts = wanted.parts
    matches = sorted(
        path for path in SHIPPED_CONFIGS.rglob(f"*{wanted.suffix}") if path.relative_to(SHIPPED_CONFIGS).parts[-len(parts):] == parts
    )  # fmt: skip
    if len(matches) > 1:
        names = ", ".join(path.relative_to(SHIPPED_CONFIGS).as_posix() for path in matches)
        raise ConfigError(
            f"--config {name} is no file here and names {len(matches)} shipped configs: {names}; give one"
        )
    if not matches:
        return name  # the config check says it does not exist
    log.info(f"--config {name}: the shipped {matches[0]}")
    return str(matches[0])
