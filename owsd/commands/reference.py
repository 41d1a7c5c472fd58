"""The docs' reference of every command and setting, made from each parser's own `--help` (the shipped
text when it is this installation's, else a fresh interpreter's): it cannot drift from the parser.
`docs/generate.py` writes the pages; `tests/commands/test_reference.py` compares them with the parsers."""

import re
from dataclasses import dataclass
from functools import cache

from owsd.commands import COMMANDS
from owsd.commands.quick_answers import SLOW_TO_PARSE, help_text
from owsd.commands.write_help import live_help

_OPTION = re.compile(r"^  (-\S.*?)(?:\s{2,}(\S.*))?$")
_POSITIONAL = re.compile(r"^  (\w+)(?:\s{2,}(\S.*))?$")
_MORE = re.compile(r"^\s{6,}(\S.*)$")
_TAIL = re.compile(r"\((?:required, )?(?:type: |default: )")
_NOT_SETTINGS = {"--help", "--print_config"}


@dataclass(frozen=True)
class Setting:
    section: str
    name: str  # dotted, as in YAML: `data.scrambler.key_file`
    type: str
    default: str
    description: str


@cache
def command_help(command: str) -> str:
    return help_text(command) or live_help(command)


def settings(help_: str) -> list[Setting]:
    """The settings a command's help lists: each option with its section, type, default and description
    (a subclass's `NAME.help` and the group-config options `--trainer CONFIG` are no settings)."""
    entries: list[list[str]] = []
    section = ""
    for line in help_.split("\n", 1)[1].splitlines():  # past the usage line's `[--x X]`s
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
        elif option := _OPTION.match(line) or (section == "positional arguments" and _POSITIONAL.match(line)):
            entries.append([section, option[1], option[2] or ""])
        elif (more := _MORE.match(line)) and entries:
            entries[-1][2] += " " + more[1]
    rows = []
    for section_, spec, text in entries:
        names = re.findall(r"--[\w.]+", spec) or [f"--{spec}"] * (section_ == "positional arguments")
        if (
            not names
            or names[0] in _NOT_SETTINGS
            or names[0].endswith(".help")
            or text.strip() == "Path to a configuration file."
        ):
            continue
        tail = list(_TAIL.finditer(text))
        described, details = (text[: tail[-1].start()], text[tail[-1].start() + 1 : -1]) if tail else (text, "")
        kind = re.search(r"type: (.*?)(?:, default: |, known subclasses: |$)", details)
        default = re.search(r"default: (.*?)(?:, known subclasses: |$)", details)
        rows.append(Setting(section_, names[0][2:], kind[1] if kind else "", default[1] if default else
                            ("required" if details.startswith("required") else ""), described.strip()))  # fmt: skip
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_page() -> str:
    """`owsd fit`'s settings (the sections every experiment config shares), then what each other command adds."""
    lines = ["# Settings", "", "Every setting each command's parser accepts, from its `--help` "
             "(`owsd.commands.reference`; a test compares them with the parsers). In a YAML config a dotted "
             "name is nested: `data.scrambler.key_file` is `data: {scrambler: {key_file: ...}}`.", ""]  # fmt: skip
    shared: set[str] = set()
    for command in SLOW_TO_PARSE:
        listed = settings(command_help(command))
        own = [setting for setting in listed if setting.name not in shared]
        names = {setting.name for setting in listed}
        common = len(names & shared)
        told = f": {common} as in `owsd fit` above, and these {len(own)}" if common else ""
        lines += [f"## owsd {command}", "", f"{len(names)} settings{told}.", ""]
        section = None
        for setting in own:
            if setting.section != section:
                section = setting.section
                lines += [
                    "",
                    f"**{_cell(section)}**",
                    "",
                    "| setting | type | default | what |",
                    "| --- | --- | --- | --- |",
                ]
            lines.append(f"| `{setting.name}` | `{_cell(setting.type)}` | `{_cell(setting.default)}` | "
                         f"{_cell(setting.description)} |")  # fmt: skip
        lines.append("")
        shared = shared or names
    return "\n".join(lines)


def commands_page() -> str:
    lines = ["# Commands", "", "`owsd --help` and each command's `--help`, as the parsers print them.", ""]
    for command, (_, summary) in COMMANDS.items():
        lines += [f"## owsd {command}", "", summary, ""]
        if command in SLOW_TO_PARSE:
            lines += ["```text", command_help(command).rstrip(), "```", ""]
    return "\n".join(lines)
