"""The `taskflow` parser: every command and every option explains itself in --help."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest

from taskflow.entrypoints.cli import _parser


def subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def nested(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction[Any]]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def every_parser(
    name: str, parser: argparse.ArgumentParser
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser and those of its commands and their actions (``tasks show``), by name."""
    yield name, parser
    for action in nested(parser):
        for command, child in action.choices.items():
            yield from every_parser(f"{name} {command}", child)


PARSER = _parser()
COMMANDS = subcommands(PARSER)
PARSERS = dict(every_parser("taskflow", PARSER))


def test_the_walk_sees_the_commands_and_options_it_checks() -> None:
    assert {"dev", "api", "worker", "migrate", "submit", "status"} <= COMMANDS.choices.keys()
    assert "--max-retries" in PARSERS["taskflow submit"]._option_string_actions


def test_the_walk_reaches_the_actions_of_commands() -> None:
    assert {"taskflow tasks show", "taskflow queues pause", "taskflow tasks retry"} <= set(PARSERS)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_command_and_action_has_help(command: str) -> None:
    for action in nested(PARSERS[command]):
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        assert helps.keys() == action.choices.keys()
        assert [name for name, text in helps.items() if not text] == []


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_option_and_argument_has_help(command: str) -> None:
    parser = PARSERS[command]
    arguments = [a for a in parser._actions if a not in nested(parser)]
    silent = [a.option_strings or a.dest for a in arguments if not (a.help or "").strip()]
    assert silent == []


@pytest.mark.parametrize(
    ("args", "url", "as_json"),
    [
        (["queues", "--url", "http://a.test", "--json", "pause", "mail"], "http://a.test", True),
        (["queues", "pause", "mail", "--url", "http://b.test"], "http://b.test", False),
        (["queues", "resume", "mail"], None, False),
        (["queues"], None, False),
    ],
)
def test_the_options_of_queues_reach_its_actions(
    args: list[str], url: str | None, as_json: bool
) -> None:
    parsed = PARSER.parse_args(args)
    assert (parsed.url, parsed.json) == (url, as_json)
