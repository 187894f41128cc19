"""Every command and argument of ``charger-controller`` and ``charger-hil`` explains itself in ``--help``;
``--version`` names the installed version."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import version

import pytest

import controller.cli
import hil.cli


def actions_without_help(parser: argparse.ArgumentParser, where: str) -> list[str]:
    """Every subcommand and argument under ``parser`` (recursively) whose help is missing, empty or suppressed."""
    missing: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or str(action.metavar or action.dest)
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{where} {name}")
        if isinstance(action, argparse._SubParsersAction):
            described = {choice.dest for choice in action._choices_actions if choice.help}
            for command, subparser in action.choices.items():
                if command not in described:
                    missing.append(f"{where} {command} (the command itself)")
                missing += actions_without_help(subparser, f"{where} {command}")
    return missing


@pytest.mark.parametrize(("program", "parser"), [("charger-controller", controller.cli._parser),
                                                 ("charger-hil", hil.cli._parser)], ids=["controller", "hil"])
def test_every_command_and_argument_has_help(program: str, parser: Callable[[], argparse.ArgumentParser]) -> None:
    built = parser()
    assert actions_without_help(built, program) == []
    assert len(_walk(built)) > 2  # the walk did reach the subcommands


def _walk(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subparser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found += _walk(subparser)
    return found


def test_the_walk_finds_an_argument_without_help() -> None:
    parser = argparse.ArgumentParser(prog="p")
    sub = parser.add_subparsers(dest="command", help="the command")
    run = sub.add_parser("run", help="run it")
    run.add_argument("--fast", action="store_true", help="quickly")
    run.add_argument("file")
    sub.add_parser("quiet")
    assert actions_without_help(parser, "p") == ["p run file", "p quiet (the command itself)"]


def test_version_names_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        controller.cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"charger-controller {version('charger-controller')}\n"
