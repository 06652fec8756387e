"""What the `bench/exp_*.py` experiment scripts share."""

from __future__ import annotations

from pathlib import Path

from thermal_hf.benchmark import build_parser

#: Recipe overrides that turn today's `recipes/thermal_native.yaml` back into the whole-room recipe the
#: experiments before the seventh session patched: keyframe targets scored as they are, the whole 40 x 60 frame,
#: no rotation. Given first, so the experiment's own overrides after `--` still win.
WHOLE_ROOM = ("--target", "keyframe", "--eval_target", "null", "--person_crop_size", "null", "--image_size", "40",
              "60", "--random_rotation_degrees", "0")


def with_whole_room(argv: list[str]) -> list[str]:
    """`thermal-hf benchmark` arguments with `WHOLE_ROOM` as the first recipe overrides (after `--`)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return [*argv[:cut], "--", *WHOLE_ROOM, *argv[cut + 1:]]


def with_experiment_output(argv: list[str], variant: str) -> list[str]:
    """`thermal-hf benchmark` arguments with ``--output outputs/benchmark/<recipe>-<variant>/<protocol>`` added when
    they give none.

    The benchmark's default folder is the plain recipe's, and it reuses a finished run whose ``recipe.yaml``
    matches: an experiment patches the code, not the recipe, so there it would reuse (or replace) the plain
    recipe's runs. Arguments the benchmark's parser rejects are returned as they are, for it to report.
    """
    cut = argv.index("--") if "--" in argv else len(argv)
    try:
        args, _ = build_parser().parse_known_args(argv[:cut])
    except (ValueError, SystemExit):  # RecipeError, --help
        return argv
    if args.output:
        return argv
    output = Path("outputs/benchmark") / f"{Path(args.recipe).stem}-{variant}" / args.protocol
    return [*argv[:cut], "--output", str(output), *argv[cut:]]


def benchmark_runs(bench_dir: Path) -> dict[str, list[Path]]:
    """The run folders of a finished `thermal-hf benchmark` output folder, by fold in the benchmark's order: those its
    ``results.json`` lists, read from where they lie now (``FOLD/seedK`` under ``bench_dir``, so a moved folder
    still works). Anything else under it (a run of an earlier, larger ``--seeds``, a fold of another
    ``--eval_recordings``, a copy set aside) was not part of that result and is not pooled with it."""
    import json

    results_file = Path(bench_dir) / "results.json"
    if not results_file.is_file():
        raise SystemExit(f"error: {bench_dir}: no results.json (not a finished `thermal-hf benchmark` output folder; "
                         "run the benchmark to its end first)")
    try:
        results = json.loads(results_file.read_text())
        seeds, listed = list(results["seeds"]), results["runs"]
        runs: dict[str, list[Path]] = {}
        for run in listed:
            run_dir = Path(bench_dir) / run["fold"] / f"seed{seeds.index(run['seed'])}"
            runs.setdefault(run["fold"], []).append(run_dir)
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"error: {results_file}: not a benchmark's results.json ({err!r})") from None
    missing = [str(path) for paths in runs.values() for path in paths if not (path / "recipe.yaml").is_file()]
    if missing:
        raise SystemExit(f"error: {results_file} lists runs that are not there (no recipe.yaml): {', '.join(missing)}")
    if not runs:
        raise SystemExit(f"error: {results_file} lists no run")
    return runs
