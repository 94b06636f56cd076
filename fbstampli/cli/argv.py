"""Command lines as operators type them: global options after the command, one-line errors.

`fbstampli sync -q` and `fbstampli push-bills -v` are what people type after years of
git, gh and rclone; the parser only knows global options before the command. `hoisted`
moves a global option written after the command in front of it, unless that command
has an option of the same name (`auth login --business ID` keeps its own). `usage_line`
turns the parser's three-line "Usage: … Try … Error: …" block into the one line every
other failure gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Global options that may follow the command: name -> whether it takes a value.
MOVABLE = {
    "-q": False,
    "--quiet": False,
    "-v": False,
    "-vv": False,
    "-vvv": False,
    "--verbose": False,
    "--home": True,
    "--business": True,
    "--installation": True,
    "--config": True,
    "--log-format": True,
    "--color": True,
    "--allow-foreign-home": False,
}


def hoisted(group: Any, args: Sequence[str]) -> list[str]:
    """`args` with the global options found after the command moved in front of it.

    Walks the words as the parser would: global options before the command are kept
    where they are; then each (sub)command name descends one level; an option of the
    command (and its value) stays put; `--` ends the walk. Anything it cannot place is
    left as it was, for the parser to refuse in its own words.
    """
    words = list(args)
    front: list[str] = []
    index = 0
    while index < len(words) and words[index].startswith("-"):  # options before the command
        name = words[index].split("=", 1)[0]
        takes = MOVABLE.get(name, False) and "=" not in words[index]
        front.extend(words[index : index + 1 + int(takes)])
        index += 1 + int(takes)
    command, path = group, []
    while index < len(words) and not words[index].startswith("-"):
        sub = _subcommand(command, words[index])
        if sub is None:
            break
        path.append(words[index])
        command, index = sub, index + 1
    if not path:
        return words
    moved: list[str] = []
    rest: list[str] = []
    own = _own_options(command)
    while index < len(words):
        word = words[index]
        if word == "--":
            rest.extend(words[index:])
            break
        name = word.split("=", 1)[0]
        if word.startswith("-") and name in MOVABLE and name not in own:
            takes = MOVABLE[name] and "=" not in word
            moved.extend(words[index : index + 1 + int(takes)])
            index += 1 + int(takes)
            continue
        rest.append(word)
        if word.startswith("-") and "=" not in word and own.get(name, False):
            if index + 1 < len(words):
                rest.append(words[index + 1])  # the option's value, whatever it looks like
            index += 1
        index += 1
    return [*front, *moved, *path, *rest]


def _subcommand(group: Any, name: str) -> Any:
    commands = getattr(group, "commands", None)
    if not isinstance(commands, dict):
        return None
    return commands.get(name)


def _own_options(command: Any) -> dict[str, bool]:
    """Every option name of `command` -> whether it takes a value."""
    names: dict[str, bool] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        for name in [*param.opts, *param.secondary_opts]:
            names[name] = takes
    return names


def usage_line(error: Any) -> str:
    """A parser error as one line: what was wrong, then where the help is."""
    message = str(error.format_message()) if hasattr(error, "format_message") else str(error)
    message = " ".join(message.split())
    context = getattr(error, "ctx", None)
    where = getattr(context, "command_path", "") or "fbstampli"
    message = f"{message[:1].lower()}{message[1:]}".rstrip(".")
    if message.endswith("?"):  # "… Did you mean 'sync'?"
        return f"{message} See `{where} -h`"
    return f"{message}; see `{where} -h`"
