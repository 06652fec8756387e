"""The `thermal-hf` console script dispatches to every subcommand and fails helpfully on typos."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from thermal_hf.cli import SUBCOMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_unknown_command_suggests_closest(capsys):
    assert main(["covert"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'covert'" in err and "convert" in err


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    # argparse's --help exits 0 after printing usage; every subcommand module must import and parse.
    try:
        code = main([name, "--help"])
    except SystemExit as exit_info:  # argparse exits after printing help
        code = exit_info.code
    assert code in (0, None)
    assert "usage" in capsys.readouterr().out.lower()


def test_console_script_installed():
    exe = shutil.which("thermal-hf") or str(__import__("pathlib").Path(sys.executable).parent / "thermal-hf")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "convert" in result.stdout
