"""The `thermal-hf` console script dispatches to every subcommand and fails helpfully on typos."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


def test_subcommands_take_no_abbreviation_and_suggest_the_option(capsys):
    from thermal_hf.data.convert import main as convert_main
    from thermal_hf.data.stats import main as stats_main

    for run, argv, hint in ((stats_main, ["data", "--weigthing", "none"], "--weigthing: did you mean --weighting?"),
                            (convert_main, ["raw", "out", "--num_frame", "16"], "--num_frame: did you mean --num_frames")):
        with pytest.raises(SystemExit) as exit_:
            run(argv)
        assert exit_.value.code == 2 and hint in capsys.readouterr().err


def test_an_optional_bool_key_alone_is_true():
    from thermal_hf.parser import parse_recipe

    tiny = Path(__file__).parent / "recipes" / "tiny.yaml"
    assert parse_recipe([str(tiny), "--stem_pool"]).model_args.stem_pool is True
    assert parse_recipe([str(tiny), "--stem_pool", "false"]).model_args.stem_pool is False
    assert parse_recipe([str(tiny)]).model_args.stem_pool is None


def _command_parser(name, monkeypatch):
    """The argument parser a subcommand builds, caught as it parses."""
    import importlib

    from thermal_hf import cli_parser

    if name == "benchmark":  # an argparse parser of its own (its errors are RecipeErrors)
        from thermal_hf.benchmark import build_parser

        return build_parser()

    class Built(Exception):
        pass

    built = []

    def catch(self, *args, **kwargs):
        built.append(self)
        raise Built

    monkeypatch.setattr(cli_parser.CommandParser, "parse_args", catch)
    monkeypatch.setattr(cli_parser.CommandParser, "parse_known_args", catch)
    with pytest.raises(Built):
        importlib.import_module(SUBCOMMANDS[name][0]).main([])
    return built[0]


# train and doctor parse recipes: HfArgumentParser's formatter prints every key's default.
@pytest.mark.parametrize("name", sorted(set(SUBCOMMANDS) - {"train", "doctor"}))
def test_every_option_with_a_default_says_it_in_its_help(name, monkeypatch):
    import argparse

    parser = _command_parser(name, monkeypatch)
    flags = (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction)
    silent = [a.option_strings[0] for a in parser._actions
              if a.option_strings and not isinstance(a, flags) and a.default not in (None, argparse.SUPPRESS, [])
              and "default" not in (a.help or "")]
    assert not silent, f"thermal-hf {name}: options whose --help hides their default: {silent}"


def test_ctrl_c_in_any_command_stops_without_a_traceback(monkeypatch, capsys):
    from thermal_hf.data import stats

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(stats, "main", interrupted)
    assert main(["stats", "somewhere"]) == 130
    assert capsys.readouterr().err.strip() == "thermal-hf stats: interrupted"


@pytest.mark.parametrize("main_process", [True, False])
def test_our_warnings_are_one_log_line_of_the_main_process(main_process, caplog):
    import logging
    import warnings
    from types import SimpleNamespace

    from thermal_hf.log_warnings import log_package_warnings
    from thermal_hf.training.trainer import ThermalTrainer

    # What training does: class weights of a split without class b (warned inside thermal_hf/training/trainer.py).
    trainer = SimpleNamespace(args=SimpleNamespace(class_weighting="inverse_frequency", class_weight_beta=0.9),
                              train_dataset=SimpleNamespace(class_counts=lambda n: [3, 0, 2]), num_labels=3,
                              model=SimpleNamespace(config=SimpleNamespace(id2label={0: "a", 1: "b", 2: "c"})))
    with warnings.catch_warnings(record=True) as shown:  # what Python's own display would have printed
        warnings.simplefilter("always")
        log_package_warnings(main_process=main_process)
        log_package_warnings(main_process=main_process)  # installed twice (train, then evaluate): said once
        with caplog.at_level(logging.WARNING, logger="thermal_hf"):
            ThermalTrainer._class_weights_from_dataset(trainer)
            warnings.warn("a user's own warning", UserWarning, stacklevel=1)
    ours = [r.getMessage() for r in caplog.records if "no training samples" in r.getMessage()]
    assert ours == (["1 class(es) have no training samples and get weight 0: b"] if main_process else [])
    # Not Python's display (file, line, code line) for ours; warnings from outside thermal_hf keep it.
    assert [str(w.message) for w in shown] == ["a user's own warning"]
