"""The docs' settings reference lists every setting each command's parser accepts, and nothing else."""

import argparse
import re

import jsonargparse
import pytest

from owsd.commands import COMMANDS
from owsd.commands.quick_answers import SLOW_TO_PARSE
from owsd.commands.reference import command_help, commands_page, settings, settings_page
from owsd.commands.settings import setting_names


class _Parsed(Exception):
    """Raised instead of parsing: carries the parser a command built."""


def parser_of(command: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """The parser `owsd COMMAND` parses its arguments with (for fit/validate/test, its subcommand's)."""

    def caught(parser, *args, **kwargs):
        raise _Parsed(parser)

    for parser_class in (argparse.ArgumentParser, jsonargparse.ArgumentParser):
        monkeypatch.setattr(parser_class, "parse_args", caught)
    from importlib import import_module

    module = import_module(f"owsd.commands.{COMMANDS[command][0]}")
    with pytest.raises(_Parsed) as parsed:
        module.main([command])
    parser = parsed.value.args[0]
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return subcommands[0].choices[command] if subcommands else parser


@pytest.mark.parametrize("command", SLOW_TO_PARSE)
def test_the_settings_reference_lists_every_setting_the_parser_accepts(command, monkeypatch):
    accepted = setting_names(parser_of(command, monkeypatch))
    help_ = command_help(command)
    linked = set(re.findall(r"--> ([\w.]+)", help_))  # set from another setting (`Linked arguments`), not given
    settable = [name for name in accepted if not name.endswith(".help")]
    groups = {name for name in settable if any(other.startswith(name + ".") for other in settable)}
    expected = set(settable) - {"print_config"} - linked - groups
    listed = [setting.name for setting in settings(help_)]
    assert len(listed) == len(set(listed))
    assert set(listed) == expected


def test_the_pages_hold_every_command_and_setting():
    commands, settings_ = commands_page(), settings_page()
    assert all(f"## owsd {command}" in commands for command in COMMANDS)
    assert (
        "| `data.scrambler.key_file` |" in settings_
        and "| `model.hidden_size` | `Annotated[int, Ge(ge=1)]` | `512` |" in settings_
    )
