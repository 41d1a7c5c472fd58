"""The ranges of numeric settings, declared in their types.

jsonargparse validates `Annotated` bounds (through pydantic) as it parses, so a value out of range is refused
before anything is created; `check_ranges` applies the same bounds to settings built in Python, so one
declaration serves both and the messages agree ("data.batch_size=0 must be ≥ 1")."""

from __future__ import annotations

import argparse
import dataclasses
import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from annotated_types import Ge, Gt, Interval, Le, Lt

from owsd.errors import ConfigError

Count = Annotated[int, Ge(1)]  # sizes, batches, epochs, images: at least one
AtLeastTwo = Annotated[int, Ge(2)]  # images that are split in two, sides that are halved
NonNegativeInt = Annotated[int, Ge(0)]
PositiveNumber = Annotated[float, Gt(0)]
NonNegativeNumber = Annotated[float, Ge(0)]
Fraction = Annotated[float, Interval(ge=0, lt=1)]  # a share that may be none but never all
OpenFraction = Annotated[float, Interval(gt=0, lt=1)]  # a share that is neither none nor all
Decay = Annotated[float, Interval(gt=0, le=1)]  # a factor per epoch: 1 keeps the rate
Port = Annotated[int, Interval(ge=0, le=65535)]  # 0: the system picks a free one


def _bounds(hint: Any) -> dict[str, float]:
    """The bounds an annotation declares ({'ge': 1}, {'gt': 0, 'lt': 1}, …), looking inside Optional and lists."""
    if get_origin(hint) is Annotated:
        bounds: dict[str, float] = {}
        for mark in hint.__metadata__:
            if isinstance(mark, (Interval, Ge, Gt, Le, Lt)):  # dataclasses of their bounds, None where unset
                bounds |= {name: bound for name, bound in dataclasses.asdict(mark).items() if bound is not None}
        return bounds
    if get_origin(hint) in (Union, types.UnionType, list):
        for inner in get_args(hint):
            if bounds := _bounds(inner):
                return bounds
    return {}


def range_text(bounds: dict[str, float]) -> str:
    """'≥ 1', '> 0', 'in [0, 1)'."""
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = (bounds["le"], "]") if "le" in bounds else (bounds["lt"], ")") if "lt" in bounds else None
    if low and high:
        return f"in {low[0]}{low[1]}, {high[0]}{high[1]}"
    if low:
        return f"{'≥' if low[0] == '[' else '>'} {low[1]}"
    return f"{'≤' if high[1] == ']' else '<'} {high[0]}" if high else "any number"


def _within(value: float, bounds: dict[str, float]) -> bool:
    checks = {
        "ge": lambda b: value >= b,
        "gt": lambda b: value > b,
        "le": lambda b: value <= b,
        "lt": lambda b: value < b,
    }
    return all(checks[name](bound) for name, bound in bounds.items())


def check_value(name: str, value: Any, hint: Any) -> None:
    """Refuse `value` (a number, a list of numbers or None) outside the bounds `hint` declares."""
    bounds = _bounds(hint)
    if not bounds or value is None:
        return
    for number in value if isinstance(value, (list, tuple)) else [value]:
        if not _within(number, bounds):
            raise ConfigError(
                f"{name}={value} must be {range_text(bounds)}{' each' if isinstance(value, list) else ''}"
            )


def option(hint: Any) -> Callable[[str], Any]:
    """An argparse `type` holding an option to the bounds of `hint` (for the commands that parse with argparse)."""
    number, bounds = get_args(hint)[0], _bounds(hint)

    def convert(text: str) -> Any:
        value = number(text)
        if not _within(value, bounds):
            raise argparse.ArgumentTypeError(f"{value} must be {range_text(bounds)}")
        return value

    convert.__name__ = number.__name__  # argparse names the type in "invalid int value"
    return convert


def check_ranges(settings: Any, prefix: str) -> None:
    """Check every field of a settings dataclass against the range its type declares."""
    hints = get_type_hints(type(settings), include_extras=True)
    for field in dataclasses.fields(settings):
        check_value(f"{prefix}.{field.name}", getattr(settings, field.name), hints[field.name])


def check_arguments(function: Any, arguments: dict[str, Any], prefix: str) -> None:
    """Check the arguments a settings-taking `__init__` got against the ranges of its parameters' types."""
    hints = get_type_hints(function, include_extras=True)
    for name, value in arguments.items():
        if name in hints:
            check_value(f"{prefix}.{name}", value, hints[name])
