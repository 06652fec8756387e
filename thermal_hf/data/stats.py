"""`thermal-hf stats DATASET_DIR`: class distribution per split and the class weights training would use.

DATASET_DIR is a converted dataset (from `thermal-hf convert`); a raw dataset folder also works (its samples
are counted from the annotations with ``--target``, nothing is converted). Weights come from the ``train``
split; see `thermal_hf.data.class_weights` for the formulas.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from thermal_hf.cli_parser import CommandParser

from ..errors import ThermalDataError
from .class_weights import WEIGHTINGS, class_weights


def split_class_counts(dataset_dir: str | Path, target: str | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(class_names, {split: int64[K] counts})`` of a converted dataset (or a raw one, counted by ``target``,
    default ``person``). A raw folder's samples that `thermal-hf convert` would refuse are left out, with a warning
    naming them."""
    from .convert import SPLITS, _is_raw_dataset, is_converted_dataset, load_converted, read_conversion_info
    from .location import resolve_dataset_location

    path = resolve_dataset_location(dataset_dir)
    if is_converted_dataset(path):
        made_with = read_conversion_info(path).get("options", {}).get("target")
        if target is not None and target != made_with:
            warnings.warn(f"{path} is converted (target {made_with}): its samples are counted as they are; "
                          f"target {target} applies to raw folders only", stacklevel=2)
        dd = load_converted(path)
        names = list(dd["train"].features["label"].names)
        # read only the label column (Arrow), never the frames
        return names, {s: np.bincount(np.asarray(dd[s].data.column("label")), minlength=len(names)).astype(np.int64)
                       for s in dd}
    if _is_raw_dataset(path):
        from .recordings import DatasetSource, format_problems
        from .windows import build_samples

        source = DatasetSource.open(path, skip_invalid=True)  # frames decoded once, as convert checks them
        if source.skipped:  # convert refuses these; counting them silently out would misstate the dataset
            warnings.warn(format_problems(path, source.skipped, can_skip=False, what="left out of these counts")
                + "\n`thermal-hf convert` refuses the folder until they are fixed (--skip_invalid leaves the same "
                "samples out)", stacklevel=2)
        names = source.class_names
        counts = {}
        for s in SPLITS:
            specs, _ = build_samples(source.splits[s], target or "person")
            counts[s] = np.bincount([x.label for x in specs], minlength=len(names)).astype(np.int64)
        return names, counts
    if not path.exists():
        raise ThermalDataError(f"dataset {path}: folder not found (expected a converted dataset from `thermal-hf "
                               "convert`, or a raw dataset folder with frames/ and annotations/)")
    raise ThermalDataError(f"{path}: neither a converted thermal-hf dataset nor a raw dataset folder "
                           "(expected thermal_hf_conversion.json, or frames/ and annotations/)")


def format_stats(names: list[str], counts: dict[str, np.ndarray], weights: np.ndarray, weighting: str) -> str:
    splits = list(counts)
    width = max(len(n) for n in names + ["class"])
    header = f"{'id':>3}  {'class':<{width}}  " + "  ".join(f"{s:>10}" for s in splits) + f"  {'weight':>8}"
    lines = [header, "-" * len(header)]
    for i, name in enumerate(names):
        cells = "  ".join(f"{int(counts[s][i]):>10}" for s in splits)
        lines.append(f"{i:>3}  {name:<{width}}  {cells}  {weights[i]:>8.3f}")
    lines.append("-" * len(header))
    lines.append(f"{'':>3}  {'total':<{width}}  " + "  ".join(f"{int(counts[s].sum()):>10}" for s in splits))
    lines.append(f"weights: {weighting} over the {int((counts['train'] > 0).sum())} classes present in train")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="thermal-hf stats", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset_dir", metavar="DATASET_DIR", help="converted or raw dataset folder, or a Hub dataset repo id ORG/NAME")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="inverse_frequency",
                   help="inverse_frequency: N/(K*n_c) over present classes (default); inverse_sqrt_frequency: "
                        "proportional to 1/sqrt(n_c); effective_number: Cui et al. 2019 (--beta); none: all ones. "
                        "Otherwise classes absent from train get 0 and a warning")
    p.add_argument("--beta", type=float, default=0.999, help="beta of effective_number (default 0.999)")
    p.add_argument("--target", choices=("person", "keyframe"), default=None,
                   help="only for a raw dataset folder: which samples to count (default person); a converted "
                        "folder counts the samples it was made with")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names, counts = split_class_counts(args.dataset_dir, target=args.target)
            if "train" not in counts:
                raise ThermalDataError(f"{args.dataset_dir}: no 'train' split to compute class weights from")
            weights = class_weights(counts["train"], args.weighting, beta=args.beta, class_names=names)
    except (ThermalDataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_stats(names, counts, weights, args.weighting))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
