"""`thermal-hf` console script: one subcommand per user job.

Each subcommand lives in its own module and exposes ``main(argv: list[str] | None) -> int``;
this file only dispatches, so ``thermal-hf convert ...`` and ``python -m thermal_hf.data.convert ...``
are the same program.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Modules are imported lazily: `thermal-hf --help` loads none of the commands'
# own dependencies (the package itself imports transformers and torch to register its Auto classes).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("thermal_hf.data.convert", "HDF5 recordings + COCO keyframes -> datasets.DatasetDict"),
    "synth": ("thermal_hf.data.synthetic", "write a synthetic dataset in the on-disk recording format"),
    "stats": ("thermal_hf.data.stats", "class distribution per split and class weights"),
    "import-checkpoint": (
        "thermal_hf.models.thermal_slowfast.convert_checkpoint",
        "pytorchvideo / MMAction2 SlowFast checkpoint -> saved model (safetensors)",
    ),
    "download-weights": ("thermal_hf.models.thermal_slowfast.download", "fetch and verify a Kinetics zoo checkpoint"),
    "train": ("thermal_hf.train", "train from a YAML recipe (same as python -m thermal_hf.train)"),
    "benchmark": (
        "thermal_hf.benchmark",
        "train and evaluate a recipe under a recording-level protocol, over seeds",
    ),
    "doctor": ("thermal_hf.doctor", "check environment, data, model and output folder for a recipe"),
    "evaluate": ("thermal_hf.evaluate", "metrics.json, report.md, confusion matrix, predictions.csv"),
    "predict": ("thermal_hf.predict", "slide a model over whole recordings -> timeline.csv/png"),
    "push": ("thermal_hf.hub", "push model, processor, card (and dataset) to the Hugging Face Hub"),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: thermal-hf <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `thermal-hf <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        import difflib

        close = difflib.get_close_matches(name, SUBCOMMANDS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        print(f"thermal-hf: unknown command {name!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    from .log_warnings import log_package_warnings

    log_package_warnings()
    try:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:  # the commands that write say what they kept; the others stop without a traceback
        print(f"\nthermal-hf {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
