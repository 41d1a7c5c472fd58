"""jsonargparse's answers to a bad command line or config, said in one line a user can act on.

jsonargparse reports a value out of range as a page of pydantic's validation errors, a YAML syntax error in
`"<unicode string>"`, and a misspelled setting without the name meant; these turn each into the setting, the
value and what it must be, the file with its line and column, and "did you mean"."""

import difflib
import re
from pathlib import Path

import yaml

_BOUNDS = {
    "greater than or equal to ": "≥ ",
    "greater than ": "> ",
    "less than or equal to ": "≤ ",
    "less than ": "< ",
}


def one_line(message: str, known: list[str], arguments: list[str]) -> str:
    """`message` from jsonargparse as one line; `known` are the parser's setting names and `arguments` the
    command line it parsed (for the config files it named)."""
    return _out_of_range(message) or _yaml_error(message, arguments) or _unknown_setting(message, known) or message


def _out_of_range(message: str) -> str | None:
    bound = re.search(r"Input should be (.+?) \[type=\w+, input_value=(.+?), input_type", message)
    keys = re.findall(r'Parser key "([^"]+)"', message)
    if bound is None or not keys:
        return None
    rule, value = bound[1], bound[2].strip("'\"")
    for words, symbol in _BOUNDS.items():
        rule = rule.replace(words, symbol)
    return f"{'.'.join(keys)}={value} must be {rule}"


def config_arguments(arguments: list[str]) -> list[tuple[int, str, str]]:
    """Where `--config`/`-c` names a file on a command line: (index of the argument holding the name, the text
    before the name in it, the name)."""
    found = []
    for index, argument in enumerate(arguments):
        if argument in ("-c", "--config") and index + 1 < len(arguments):
            found.append((index + 1, "", arguments[index + 1]))
        elif argument.startswith("--config="):
            found.append((index, "--config=", argument.split("=", 1)[1]))
    return found


def config_files(arguments: list[str]) -> list[Path]:
    """The files `--config`/`-c` named on a command line."""
    return [Path(name) for _, _, name in config_arguments(arguments)]


def _yaml_error(message: str, arguments: list[str]) -> str | None:
    if "<unicode string>" not in message:
        return None
    for path in config_files(arguments):
        try:
            yaml.safe_load(path.read_text())
        except yaml.MarkedYAMLError as error:
            return f"{path}{yaml_syntax(error)}"
        except (OSError, yaml.YAMLError):
            continue
    return " ".join(message.replace('"<unicode string>"', "the config").split())


def yaml_syntax(error: yaml.MarkedYAMLError) -> str:
    """Where a YAML file broke and why: ", line 4, column 1: expected ',' or ']', … (YAML syntax)"."""
    mark = error.problem_mark or error.context_mark
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {error.problem or error.context} (YAML syntax)"


def _unknown_setting(message: str, known: list[str]) -> str | None:
    unknown = re.search(r"unrecognized arguments: --([\w.]+)", message)
    group = re.search(r"(Group|Subcommand) '([\w.]+)' does not accept option '([\w.]+)'", message)
    if unknown:
        key = unknown[1]
    elif group:  # a subcommand's name is no part of its settings' names
        key = group[3] if group[1] == "Subcommand" else f"{group[2]}.{group[3]}"
    else:
        return None
    return unknown_setting(key, known)


def unknown_setting(key: str, known: list[str]) -> str:
    """ "unknown setting KEY", with the known setting closest to it."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    suggestion = f"; did you mean {close[0]}?" if close else ""
    return f"unknown setting {key}{suggestion}"
