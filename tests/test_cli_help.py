"""Every command's --help is plain text: no reStructuredText markup, no doubled full stops."""

import re

import pytest

from emostats.cli import main

MARKUP = re.compile(r"``|:(?:mod|func|class|meth|attr):`|(?<!\.)\.\.(?!\.)|\*\*\w")


def _commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    block = text.split("positional arguments:")[1].split("options:")[0]
    return re.findall(r"^    ([a-z][a-z_-]+)", block, flags=re.M)


def test_help_is_plain_text(capsys):
    commands = _commands(capsys)
    assert {"info", "validate", "synth", "run", "extract"} <= set(commands)
    for command in [None, *commands]:
        with pytest.raises(SystemExit) as exc:
            main(["--help"] if command is None else [command, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        bad = MARKUP.findall(text)
        assert not bad, (command, bad, text[:400])
