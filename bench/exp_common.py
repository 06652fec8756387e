"""What the `bench/exp_*.py` experiment scripts share."""

from __future__ import annotations

from pathlib import Path

from thermal_hf.benchmark import build_parser


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
