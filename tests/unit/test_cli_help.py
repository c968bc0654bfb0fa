"""The CLI's help stays current: the module docstring (`evalkit --help`) names every command with an example, and
each command's own `--help` says what it does (issue 17: the docstring had named 7 of 11)."""

from __future__ import annotations

import argparse

import pytest

from evalkit import cli


def _commands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_docstring_names_every_command_with_an_example() -> None:
    assert cli.__doc__ is not None
    first, examples = cli.__doc__.split("\n\n", 1)
    summary = " ".join(first.split())
    for name in _commands():
        assert f" {name}," in summary or f" {name} (" in summary, f"the docstring's first lines do not name {name}"
        assert f"\nevalkit {name} " in f"\n{examples}", f"the docstring shows no example of `evalkit {name}`"


@pytest.mark.parametrize("name", sorted(_commands()))
def test_each_command_help_says_what_it_does(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args([name, "--help"])
    assert exit_.value.code == 0
    description = _commands()[name].description
    assert description, f"`evalkit {name} --help` says nothing of what it does"
    assert description.split()[0] in capsys.readouterr().out
