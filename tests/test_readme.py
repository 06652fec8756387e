"""The README's commands work as written.

The tour block (synthetic data: synth, convert, stats, doctor, train, evaluate, predict, push --dry_run) and the
Python snippet after it are run for real, in a scratch folder, exactly as a new user would paste them. The
reference blocks (which carry placeholders like DATA_ROOT or need a GPU / the real data for hours) are checked
flag by flag against each command's own `--help`, so a renamed or removed option fails here.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from thermal_hf.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _blocks(lang: str, text: str = README) -> list[tuple[str, str]]:
    """(heading above the block, block text) for every fenced block of `lang`."""
    out, heading = [], ""
    for match in re.finditer(rf"^(#+ [^\n]*)$|^```{lang}\n(.*?)^```", text, flags=re.M | re.S):
        if match.group(1):
            heading = match.group(1)
        else:
            out.append((heading, match.group(2)))
    return out


def _commands(block: str) -> list[str]:
    lines = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_OFFLINE"] = "1"
    env["THERMAL_HF_CACHE"] = env.get("THERMAL_HF_CACHE", "")
    return env


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path):
    tour = [block for heading, block in _blocks("bash") if heading.startswith("## A tour")]
    assert len(tour) == 1, "README must have exactly one bash block under '## A tour'"
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    env = _env()
    env["THERMAL_HF_CACHE"] = str(tmp_path / "cache")
    for command in _commands(tour[0]):
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"README command failed: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "predictions.csv"):
        assert (tmp_path / "outputs/tour/eval" / name).is_file()
    assert (tmp_path / "outputs/tour/timeline/timeline.csv").is_file()

    snippets = [block for heading, block in _blocks("python") if heading.startswith("## A tour")]
    assert len(snippets) == 1
    result = subprocess.run(
        [sys.executable, "-c", snippets[0]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("'label'") == 9  # three calls, top 3 each

    library = [block for heading, block in _blocks("python") if heading.startswith("## From Python")]
    assert len(library) == 1
    result = subprocess.run(
        [sys.executable, "-c", library[0]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from transformers import pipeline

    import thermal_hf  # noqa: F401  registers the pipeline
    answer = pipeline("video-classification", model=str(tmp_path / "outputs/library"))(
        str(tmp_path / "data/tour/frames/SY01_R1.h5"), top_k=2)
    assert len(answer) == 2 and answer[0]["score"] >= answer[1]["score"]


@functools.cache
def _help(module: str) -> str:
    """A command's --help text, in this process (importing the package once, not once per command)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            code = importlib.import_module(module).main(["--help"])
        except SystemExit as exit_info:  # argparse exits after printing help
            code = exit_info.code
    assert code in (0, None), f"{module} --help failed"
    return buffer.getvalue()


def test_readme_reference_commands_use_real_flags():
    checked = 0
    for heading, block in _blocks("bash"):
        if heading.startswith("## Set up"):
            continue  # make targets: exercised by CI itself
        for command in _commands(block):
            argv = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
            if argv[:2] == ["accelerate", "launch"]:
                argv = argv[argv.index("-m") :]
                argv = ["python", *argv]
            if argv[0] == "thermal-hf":
                module = SUBCOMMANDS[argv[1]][0]
            elif argv[0] in ("python", sys.executable) and argv[1] == "-m":
                module = argv[2]
            else:
                continue
            if module.endswith("doctor"):
                # doctor takes any recipe key as a flag: the training parser's --help lists them all.
                module = "thermal_hf.train"
            helptext = _help(module)
            for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
                assert flag in helptext, f"README command uses {flag}, unknown to {module}: {command}"
            checked += 1
    assert checked >= 10


def _continuation_problems(block: str) -> list[str]:
    """Lines of a bash block that break a backslash-continued command when pasted into a shell."""
    problems = []
    lines = block.splitlines()
    for number, line in enumerate(lines, 1):
        if re.search(r"\\[ \t]+(#|$)", line):
            # `\    # comment`: the backslash escapes a space, not the newline; the command ends here and the
            # next lines run as commands of their own (`--num_train_epochs: command not found`).
            problems.append(f"line {number}: text after the continuation backslash: {line.strip()}")
        elif line.endswith("\\") and re.search(r"(^|\s)#", line):
            problems.append(f"line {number}: the continuation backslash is inside a comment: {line.strip()}")
        elif number > 1 and lines[number - 2].endswith("\\") and line.lstrip().startswith("#"):
            problems.append(f"line {number}: a comment line inside a continued command: {line.strip()}")
    return problems


def test_continued_bash_commands_paste_as_written():
    docs = [*REPO.glob("*.md"), *REPO.glob("recipes/*.md"), *REPO.glob("compat/*.md")]
    assert REPO / "recipes" / "README.md" in docs
    problems = [f"{doc.relative_to(REPO)} ({heading or 'top'}), {problem}"
                for doc in docs for heading, block in _blocks("bash", doc.read_text())
                for problem in _continuation_problems(block)]
    assert not problems, "bash blocks that break when pasted:\n" + "\n".join(problems)
    # What the check is for (the Overriding block of recipes/README.md once read like this):
    assert _continuation_problems("cmd recipe.yaml \\\n    --dataset d \\    # a comment\n    --epochs 3\n")
    assert _continuation_problems("cmd \\\n# a comment\n    --epochs 3\n")
    assert not _continuation_problems("# a comment\ncmd \\\n    --epochs 3  # trailing comment\n")
