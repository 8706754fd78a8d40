"""The `taskflow` parser: every command and every option explains itself in --help."""

from __future__ import annotations

import argparse

import pytest

from taskflow.entrypoints.cli import _parser


def subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


PARSER = _parser()
COMMANDS = subcommands(PARSER)
PARSERS = {"taskflow": PARSER, **COMMANDS.choices}


def test_the_walk_sees_the_commands_and_options_it_checks() -> None:
    assert {"dev", "api", "worker", "migrate", "submit", "status"} <= COMMANDS.choices.keys()
    assert "--max-retries" in PARSERS["submit"]._option_string_actions


def test_every_command_has_help() -> None:
    helps = {choice.dest: choice.help for choice in COMMANDS._choices_actions}
    assert helps.keys() == COMMANDS.choices.keys()
    assert [name for name, text in helps.items() if not text] == []


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_option_and_argument_has_help(command: str) -> None:
    arguments = [a for a in PARSERS[command]._actions if a is not COMMANDS]
    silent = [a.option_strings or a.dest for a in arguments if not (a.help or "").strip()]
    assert silent == []
