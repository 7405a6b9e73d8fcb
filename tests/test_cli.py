"""The `medcap` console script: help everywhere, one-line errors, real commands."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from medcap import cli


def _commands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_every_command_has_help(capsys):
    commands = list(_commands(cli.build_parser()))
    top = {c[0] for c in commands}
    assert {"experiments", "train", "evaluate", "caption", "score", "baseline", "data", "features"} <= top
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: medcap " + " ".join(command) in capsys.readouterr().out


def test_console_script_starts_without_tensorflow():
    # Command modules must not import TensorFlow at import time.
    code = "import sys; from medcap import cli; cli.build_parser(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_experiments_lists_paper_and_table(capsys):
    assert cli.main(["experiments", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["paper"] and r["table"] for r in rows)
    assert "model80" in {r["name"] for r in rows}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope"], "unknown experiment 'nope'; valid names:"),
        (["train", "model80", "--set", "train.epoch=1"], "unknown config key train.epoch; valid keys:"),
        (["evaluate", "--workdir", "/nonexistent/run"], "not a medcap workdir"),
        (["caption", "--workdir", "/nonexistent/run", "/nonexistent/x.png"], "no such image file"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medcap: error: ") and message in err[0], err


def test_train_refuses_a_cluster_of_one_worker(capsys):
    assert cli.main(["train", "model80", "--smoke", "--workers", "1"]) == 2
    assert "--workers 1: a cluster needs at least 2 workers" in capsys.readouterr().err
