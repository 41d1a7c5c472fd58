"""Settings built in Python are held to the ranges their types declare, with the parser's words."""

import pytest

from owsd.data.selection import SplitSettings
from owsd.errors import ConfigError
from owsd.iin_module import IINModule
from owsd.ranges import Count, Decay, Fraction, check_value
from owsd.security.settings import AttackSettings, KeyRecoverySettings


def test_settings_built_in_python_are_held_to_the_same_ranges():
    with pytest.raises(ConfigError, match=r"^data.split.images_per_label=0 must be ≥ 1$"):
        SplitSettings(images_per_label=0)
    with pytest.raises(ConfigError, match=r"^model.hidden_size=0 must be ≥ 1$"):
        IINModule(hidden_size=0)
    with pytest.raises(ConfigError, match=r"^attack.margin=1.5 must be in \(0, 1\)$"):
        AttackSettings(margin=1.5)
    with pytest.raises(ConfigError, match=r"^attack.key_recovery.channels=\[16, 4\] must be ≥ 8 each$"):
        KeyRecoverySettings(channels=[16, 4])


@pytest.mark.parametrize(
    "value, hint, refused",
    [(1, Count, False), (0, Count, True), (None, Count | None, False), (0.0, Fraction, False), (1.0, Fraction, True),
     (1.0, Decay, False), (0.0, Decay, True), ([3, 0], list[Count] | None, True), (7, int, False)],
)  # fmt: skip
def test_bounds_hold_inside_optional_and_lists(value, hint, refused):
    if refused:
        with pytest.raises(ConfigError, match=r"^x=.* must be "):
            check_value("x", value, hint)
    else:
        check_value("x", value, hint)
