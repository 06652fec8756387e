"""Raw thermal recordings + COCO keyframes -> a `datasets.DatasetDict` saved with ``save_to_disk``.

    thermal-hf convert DATA_ROOT OUTPUT_DIR [--target person|keyframe] [--num_frames 64] [--frame_rate FPS]
                       [--split_by annotations|recording] [--val_fraction 0.2] [--seed 0] [--skip_invalid]

Everything is validated before anything is written (see `recordings.DatasetSource.open`). Each recording's
HDF5 file is decompressed once; windows are cut from it in memory and streamed to Arrow in bounded batches.
The frames are stored raw (degrees Celsius, invalid -273.2 pixels included) and bit-exact: cleaning belongs to
`thermal_hf.data.transforms`, shared by training, evaluation and inference.

Writing is atomic: the dataset is built in a hidden folder beside OUTPUT_DIR and renamed into place at the
end, so a failed or interrupted conversion never damages a dataset already at OUTPUT_DIR. A converted OUTPUT_DIR
is replaced without asking only by the same conversion (same options, same source): one made otherwise needs
``--overwrite``, as any other non-empty folder does.

Read the result with `load_converted(path)`, and use ``ds.with_format("numpy")`` for fast access (the Python
lists that ``set_transform`` hands out are ~20x slower).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermal_hf.cli_parser import CommandParser

from ..errors import ThermalDataError
from .recordings import DatasetSource, Problem
from .staging import OWNER_FILE, hold_owner_lock, raise_on_sigterm, remove_abandoned
from .transforms import invalid_mask
from .windows import TARGETS, SampleSpec, build_samples, time_window_indices, window_indices

CONVERSION_FILE = "thermal_hf_conversion.json"
FORMAT_VERSION = 1
SPLIT_BY = ("annotations", "recording")
SPLITS = ("train", "validation")
# Rows are ~0.6 MB each at 64x40x60: flush to Arrow every ~32 MB so memory stays bounded on any dataset size.
_WRITER_BATCH_BYTES = 32 << 20
DEFAULT_CACHE_DIR = Path("~/.cache/thermal_hf/converted")


def dataset_features(num_frames: int, height: int, width: int, class_names: list[str]):
    """The converted dataset's `datasets.Features` (column names and types are part of the public contract)."""
    from datasets import Array3D, ClassLabel, Features, Sequence, Value

    return Features({
        "frames": Array3D(shape=(num_frames, height, width), dtype="float32"),
        "timestamps": Sequence(Value("int64"), length=num_frames),
        "label": ClassLabel(names=list(class_names)),
        "bbox": Sequence(Value("float32"), length=4),
        "recording": Value("string"),
        "sensor_id": Value("string"),
        "image_id": Value("string"),
        "object_id": Value("int64"),
        "keyframe_index": Value("int64"),
        "padded_frames": Value("int32"),
        "invalid_fraction": Value("float32"),
    })


@dataclass
class ConversionReport:
    """What a conversion produced; ``format()`` is the closing report the CLI prints."""

    output_dir: str
    source: str
    options: dict[str, Any]
    class_names: list[str]
    class_counts: dict[str, dict[str, int]]
    num_samples: dict[str, int]
    split_recordings: dict[str, list[str]]
    padded_samples: dict[str, int]
    frame_shape: list[int]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = [f"Converted {self.source} -> {self.output_dir} in {self.seconds:.1f} s",
                 f"options: {json.dumps(self.options)}",
                 f"frames per sample: {self.frame_shape[0]} x {self.frame_shape[1]} x {self.frame_shape[2]} (raw deg C)"]
        for split in SPLITS:
            recs = self.split_recordings.get(split, [])
            lines.append(f"{split}: {self.num_samples.get(split, 0)} samples from {len(recs)} recording(s) "
                         f"[{', '.join(recs)}], {self.padded_samples.get(split, 0)} with edge padding")
        width = max(len(n) for n in self.class_names)
        lines.append("")
        lines.append(f"  {'id':>3}  {'class':<{width}}  " + "  ".join(f"{s:>10}" for s in SPLITS))
        for i, name in enumerate(self.class_names):
            counts = "  ".join(f"{self.class_counts.get(s, {}).get(name, 0):>10}" for s in SPLITS)
            lines.append(f"  {i:>3}  {name:<{width}}  {counts}")
        lines.append("")
        if self.skipped:
            # group identical reasons (e.g. every keyframe of a corrupt recording) into one line
            groups: dict[tuple[str, str], list[str]] = {}
            for s in self.skipped:
                groups.setdefault((s["file"], s["reason"]), []).append(s["where"])
            lines.append(f"skipped {len(self.skipped)} item(s) (all listed in {CONVERSION_FILE}):")
            for (file, reason), wheres in list(groups.items())[:100]:
                more = f" (+{len(wheres) - 3} more)" if len(wheres) > 3 else ""
                lines.append(f"  - {file}: {', '.join(wheres[:3])}{more}: {reason}")
            if len(groups) > 100:
                lines.append(f"  ... and {len(groups) - 100} more reasons")
        else:
            lines.append("skipped: nothing")
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s), e.g. {self.warnings[0]}")
        return "\n".join(lines)


def is_converted_dataset(path: str | Path) -> bool:
    """True if ``path`` holds a dataset written by `convert_dataset`."""
    path = Path(path)
    return (path / "dataset_dict.json").is_file() and (path / CONVERSION_FILE).is_file()


def read_conversion_info(path: str | Path) -> dict[str, Any]:
    """The ``thermal_hf_conversion.json`` of a converted dataset (source, options, class names and counts)."""
    path = Path(path)
    if not is_converted_dataset(path):
        if not path.exists():
            raise ThermalDataError(f"{path}: folder not found (expected a converted thermal-hf dataset)")
        if is_converted_dataset(path.parent):
            raise ThermalDataError(f"{path} is one split of the converted dataset {path.parent}: load that folder and "
                                   f"take its split (load_converted({str(path.parent)!r})[{path.name!r}])")
        if _is_raw_dataset(path):
            raise ThermalDataError(f"{path} is a raw dataset (frames/, annotations/): convert it first (`thermal-hf "
                                   f"convert {path} OUTPUT_DIR`, or ensure_converted({str(path)!r}))")
        raise ThermalDataError(f"{path}: not a converted thermal-hf dataset (expected dataset_dict.json and "
                               f"{CONVERSION_FILE}; create it with `thermal-hf convert RAW_DIR {path}`)")
    return json.loads((path / CONVERSION_FILE).read_text())


def load_converted(path: str | Path):
    """Load a converted dataset as a `datasets.DatasetDict` (memory-mapped; nothing is read yet)."""
    from datasets import load_from_disk

    read_conversion_info(path)  # raises a clear error when it is not one
    try:
        return load_from_disk(str(path))
    except Exception as err:  # a split folder removed, an Arrow file cut short: datasets' own error names neither
        raise ThermalDataError(
            f"{path}: damaged converted dataset ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"convert it again (`thermal-hf convert RAW_DIR {path} --overwrite`)"
        ) from err


def _chunk_frames(chunk, shape: tuple[int, ...]) -> np.ndarray:
    """``(rows, *shape)`` float32 view of one Arrow chunk of the ``frames`` column (read-only; a copy only if the
    chunk holds nulls, which `convert_dataset` never writes)."""
    storage = chunk.storage if hasattr(chunk, "storage") else chunk
    values = storage.flatten().flatten().flatten()  # Array3D: lists of lists of lists; flatten honours offsets
    try:
        out = values.to_numpy(zero_copy_only=True)
    except Exception:  # e.g. nulls; never expected from convert_dataset, but stay correct
        out = values.to_numpy(zero_copy_only=False)
    return out.reshape(len(chunk), *shape)


class ClipReader:
    """Zero-copy random access to one converted split: the fast path for training data loading.

    ``ds.with_format("numpy")[i]`` formats all 11 columns through `datasets`' formatter (a few hundred rows/s
    on 2 cores); this reads the ``frames`` row straight out of the memory-mapped Arrow buffer as a read-only
    ``float32 (T, H, W)`` view (thousands of rows/s) and keeps the small columns as numpy arrays. Copy
    before writing to the frames (`thermal_hf.data.transforms.repair_invalid` returns a copy).

        reader = ClipReader(load_converted(path)["train"])
        sample = reader[i]   # {"frames", "label", "bbox", "recording", ..., "padded_frames", "invalid_fraction"}
        frames = reader.frames(i)
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.shape = tuple(dataset.features["frames"].shape)
        # rows of a select()/shuffle()d dataset are reached through its indices mapping
        indices = getattr(dataset, "_indices", None)
        self._rows = None if indices is None else np.asarray(indices.column(0).to_numpy(), dtype=np.int64)
        self._chunks, self._chunk_starts = self._frame_chunks()
        small = [c for c in dataset.column_names if c != "frames"]
        table = dataset.select_columns(small).with_format("numpy")[:] if small else {}
        self.columns = {c: np.asarray(table[c]) for c in small}

    def _frame_chunks(self) -> tuple[list[np.ndarray], np.ndarray]:
        # One zero-copy (rows, T, H, W) view per Arrow chunk, made once: slicing the column per row rebuilt the
        # Array3D extension type each time (~0.2 ms a row, as long as a 16-frame clip's whole augmentation).
        chunks, starts = [], [0]
        for chunk in self.dataset.data.table.column("frames").chunks:
            chunks.append(_chunk_frames(chunk, self.shape))
            starts.append(starts[-1] + len(chunk))
        return chunks, np.asarray(starts, dtype=np.int64)

    def __getstate__(self) -> dict:
        # Pickled (DataLoader workers under spawn / forkserver, multiprocessing): the views would be pickled as
        # copies of every frame; the dataset pickles as a reference to its memory-mapped files instead.
        state = dict(self.__dict__)
        state["_chunks"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._chunks, self._chunk_starts = self._frame_chunks()

    def __len__(self) -> int:
        return self.dataset.num_rows

    def frames(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a split of {len(self)} rows")
        index = int(index) % len(self)
        row = int(self._rows[index]) if self._rows is not None else index
        chunk = int(np.searchsorted(self._chunk_starts, row, side="right")) - 1
        return self._chunks[chunk][row - self._chunk_starts[chunk]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = {"frames": self.frames(index)}
        sample.update({c: v[int(index)] for c, v in self.columns.items()})
        return sample


def _is_raw_dataset(path: Path) -> bool:
    return (path / "annotations").is_dir() and (path / "frames").is_dir()


def _split_by_recording(samples: dict[str, list[SampleSpec]], val_fraction: float, seed: int):
    """Regroup all samples so every recording lands in exactly one split (seeded, sorted names then permuted)."""
    recs = sorted({s.recording for split in samples.values() for s in split})
    if len(recs) < 2:
        raise ThermalDataError(f"split_by='recording' needs at least 2 recordings with samples, found {recs}")
    order = np.random.default_rng(seed).permutation(len(recs))
    n_val = min(max(1, int(round(val_fraction * len(recs)))), len(recs) - 1)
    val = {recs[i] for i in order[:n_val]}
    pooled = [s for split in SPLITS for s in samples[split]]
    pooled.sort(key=lambda s: (s.recording, s.keyframe_index, s.image_id, s.object_id, str(s.annotation_ids)))
    return {"train": [s for s in pooled if s.recording not in val],
            "validation": [s for s in pooled if s.recording in val]}


def _check_output_dir(output_dir: Path, data_root: Path, overwrite: bool, options: dict | None = None) -> None:
    out = output_dir.resolve()
    # frames/ or annotations/ may be links to folders elsewhere: those must not be written into either.
    for root in (data_root.resolve(), (data_root / "frames").resolve(), (data_root / "annotations").resolve()):
        if out == root or root in out.parents or out in root.parents:
            raise ThermalDataError(f"output folder {output_dir} overlaps the raw dataset {data_root} ({root}); choose "
                                   "a folder outside it")
    if not output_dir.exists() or overwrite:
        return
    if is_converted_dataset(output_dir):
        # The same conversion again (a refresh) replaces it; one of other windows, targets or splits would change
        # what every model trained or scored on that folder meant: asked for, not done by default.
        try:
            info = read_conversion_info(output_dir)
        except (ThermalDataError, ValueError):  # a damaged record: converting again is what repairs it
            return
        recorded = {**_OPTION_DEFAULTS, **info.get("options", {})}
        asked = {**_OPTION_DEFAULTS, **(options or {})}
        differing = [f"{k} {recorded.get(k)} -> {asked[k]}" for k in asked if recorded.get(k) != asked[k]]
        source = info.get("source")
        if source is not None and Path(source).expanduser().resolve() != data_root.resolve():
            differing.append(f"source {source} -> {data_root}")
        if differing:
            raise ThermalDataError(f"{output_dir} is a converted dataset made otherwise ({', '.join(differing)}); "
                                   "refusing to replace it (pass overwrite=True / --overwrite, or choose another folder)")
        return
    if output_dir.is_dir() and not any(output_dir.iterdir()):
        return
    raise ThermalDataError(f"{output_dir} exists and is not a converted thermal-hf dataset; refusing to replace it "
                           "(pass overwrite=True / --overwrite, or choose another folder)")


_TMP_INFIX = ".converting-"
def _swap_into_place(tmp: Path, output_dir: Path) -> None:
    """Rename ``tmp`` to ``output_dir``; an existing ``output_dir`` is moved aside first and restored on failure."""
    old = None
    if output_dir.exists() or output_dir.is_symlink():
        old = output_dir.parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(output_dir, old)
    try:
        os.replace(tmp, output_dir)
    except BaseException:
        if old is not None:
            os.replace(old, output_dir)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def convert_dataset(
    data_root: str | Path,
    output_dir: str | Path,
    *,
    target: str = "person",
    num_frames: int = 64,
    frame_rate: float | None = None,
    split_by: str = "annotations",
    val_fraction: float = 0.2,
    seed: int = 0,
    skip_invalid: bool = False,
    invalid_floor: float = -50.0,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> ConversionReport:
    """Convert the raw dataset at ``data_root`` into a DatasetDict (``train``, ``validation``) at ``output_dir``.

    Args:
        target: "person" (one sample per person annotation) or "keyframe" (one per keyframe, majority label,
            ties -> lowest category id, union bbox, object_id -1).
        num_frames: window length; ``num_frames // 2`` frames before the keyframe, the keyframe, the rest after.
        frame_rate: None keeps every recorded frame (a window is ``num_frames`` consecutive frames). A rate in
            frames per second resamples each window on the recording's timestamps instead: ``num_frames``
            instants ``1 / frame_rate`` s apart around the keyframe's, each the nearest recorded frame
            (`windows.time_window_indices`), so every window spans ``num_frames / frame_rate`` seconds.
        split_by: "annotations" keeps the users' train/val files; "recording" pools both and assigns whole
            recordings to a split (seeded; ``round(val_fraction * R)`` recordings, at least 1, to validation,
            at least 1 left for training), so no recording's windows appear in both splits.
        skip_invalid: leave out unusable samples (listed in the report) instead of raising.
        invalid_floor: pixels below this (deg C) or non-finite count towards the ``invalid_fraction`` column;
            the frames themselves are stored unchanged.
        overwrite: replace an existing OUTPUT_DIR that is not a converted dataset, or one converted with other
            options or from another source (the same conversion again always replaces it, atomically).
        show_progress: tqdm bar; None = only on a terminal.

    Raises `ThermalDataError` (listing every problem) before writing anything if the input is bad.
    """
    from datasets import Dataset, DatasetDict, DatasetInfo
    from datasets import utils as datasets_progress
    from datasets.arrow_writer import ArrowWriter
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    data_root, output_dir = Path(data_root).expanduser(), Path(output_dir).expanduser()
    if target not in TARGETS:
        raise ThermalDataError(f"target must be one of {TARGETS}, got {target!r}")
    if split_by not in SPLIT_BY:
        raise ThermalDataError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    if int(num_frames) < 1:
        raise ThermalDataError(f"num_frames must be >= 1, got {num_frames}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ThermalDataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if frame_rate is not None and not float(frame_rate) > 0:
        raise ThermalDataError(f"frame_rate must be a positive number of frames per second (or None), got {frame_rate}")
    num_frames = int(num_frames)
    frame_rate = None if frame_rate is None else float(frame_rate)
    options = {"target": target, "num_frames": num_frames, "split_by": split_by, "val_fraction": float(val_fraction),
               "seed": int(seed), "skip_invalid": bool(skip_invalid), "invalid_floor": float(invalid_floor)}
    if frame_rate is not None:  # only when set, so datasets converted before this option keep their cache key
        options["frame_rate"] = frame_rate

    # 1. validate everything and plan every sample before writing a byte
    _check_output_dir(output_dir, data_root, overwrite, options)
    source = DatasetSource.open(data_root, skip_invalid=skip_invalid)
    skipped: list[Problem] = list(source.skipped)
    samples: dict[str, list[SampleSpec]] = {}
    for split in SPLITS:
        samples[split], dropped = build_samples(source.splits[split], target)
        skipped += dropped
    if split_by == "recording":
        samples = _split_by_recording(samples, float(val_fraction), int(seed))
    for split in SPLITS:
        if not samples[split]:  # datasets cannot reload an empty split it saved
            source_file = (f"annotations of split {split!r} ({source.splits[split].path.name})" if split_by == "annotations"
                           else f"recordings assigned to {split!r}")
            raise ThermalDataError(f"{data_root}: no usable {split} samples in the {source_file} (skipped: "
                                   f"{len(skipped)}); expected at least one (split_by: recording makes the splits "
                                   "from whole recordings instead)")
    used = {x.recording for split in SPLITS for x in samples[split]}
    sizes: dict[tuple[int, int], list[str]] = {}
    for name, rec in source.recordings.items():
        if name in used:
            sizes.setdefault((rec.height, rec.width), []).append(name)
    if len(sizes) > 1:
        common = max(sizes, key=lambda k: len(sizes[k]))
        odd = [f"frames/{n}.h5 {h}x{w}" for (h, w), names in sizes.items() if (h, w) != common for n in names]
        raise ThermalDataError(f"{data_root}: recordings of another frame size than the other recordings' "
                               f"{common[0]}x{common[1]} (height x width): {', '.join(odd)}; expected one size for the "
                               "whole dataset")
    shapes = set(sizes)
    height, width = shapes.pop()
    names = source.class_names
    features = dataset_features(num_frames, height, width, names)
    class_counts = {s: {n: 0 for n in names} for s in SPLITS}
    for split in SPLITS:
        for label, n in Counter(x.label for x in samples[split]).items():
            class_counts[split][names[label]] = n

    # 2. write into a hidden folder beside the output, then rename it into place
    tmp = output_dir.parent / f".{output_dir.name}{_TMP_INFIX}{uuid.uuid4().hex[:8]}"
    scratch = tmp / "_scratch"
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(output_dir, _TMP_INFIX)
        scratch.mkdir(parents=True)
    except OSError as err:
        raise ThermalDataError(f"{output_dir}: cannot write the converted dataset there ({err.strerror or err})") from None
    owner = hold_owner_lock(tmp)
    padded = dict.fromkeys(SPLITS, 0)
    restore_sigterm = raise_on_sigterm()
    try:
        row_bytes = num_frames * height * width * 4
        batch = max(1, _WRITER_BATCH_BYTES // row_bytes)
        writers = {s: ArrowWriter(features=features, path=str(scratch / f"{s}.arrow"), writer_batch_size=batch)
                   for s in SPLITS}
        by_rec: dict[str, list[tuple[str, SampleSpec]]] = {}
        for split in SPLITS:
            for spec in samples[split]:
                by_rec.setdefault(spec.recording, []).append((split, spec))
        total = sum(len(v) for v in by_rec.values())
        with tqdm(total=total, desc="converting", unit="sample", disable=None if show_progress is None
                  else not show_progress) as bar:
            for rec_name in sorted(by_rec):
                frames_all, stamps_all = source.recordings[rec_name].read_all()  # one read per recording
                for split, spec in by_rec[rec_name]:
                    if frame_rate is None:
                        idx, before, after = window_indices(spec.keyframe_index, num_frames, frames_all.shape[0])
                    else:
                        idx, before, after = time_window_indices(stamps_all, spec.keyframe_index, num_frames,
                                                                 frame_rate)
                    window = frames_all[idx]
                    invalid = float(invalid_mask(window, invalid_floor).mean())
                    padded[split] += bool(before + after)
                    writers[split].write({
                        "frames": window, "timestamps": stamps_all[idx], "label": spec.label,
                        "bbox": np.asarray(spec.bbox, dtype=np.float32), "recording": rec_name,
                        "sensor_id": source.recordings[rec_name].sensor_id, "image_id": spec.image_id,
                        "object_id": spec.object_id, "keyframe_index": spec.keyframe_index,
                        "padded_frames": before + after, "invalid_fraction": invalid,
                    })
                    bar.update()
                del frames_all
        for w in writers.values():
            w.finalize()
            w.close()

        report = ConversionReport(
            output_dir=str(output_dir), source=str(data_root.resolve()), options=options, class_names=names,
            class_counts=class_counts, num_samples={s: len(samples[s]) for s in SPLITS},
            split_recordings={s: sorted({x.recording for x in samples[s]}) for s in SPLITS},
            padded_samples=padded, frame_shape=[num_frames, height, width],
            skipped=[_skip_dict(p) for p in skipped], warnings=list(source.warnings),
        )
        meta = {"source": report.source, "options": options, "class_names": names, "class_counts": class_counts,
                "num_samples": report.num_samples, "split_recordings": report.split_recordings,
                "skipped": report.skipped, "warnings": report.warnings, "format_version": FORMAT_VERSION}
        description = ("thermal-hf conversion of raw thermal recordings (windows of raw deg C frames around "
                       "annotated keyframes).\n" + json.dumps(meta))
        dd = DatasetDict({
            s: Dataset.from_file(str(scratch / f"{s}.arrow"), info=DatasetInfo(description=description, features=features))
            for s in SPLITS
        })
        # our own bar already showed progress; the copy's bars would only repeat it
        bars_were_on = datasets_progress.is_progress_bar_enabled()
        datasets_progress.disable_progress_bars()
        try:
            dd.save_to_disk(str(tmp))
        finally:
            if bars_were_on:
                datasets_progress.enable_progress_bars()
        del dd
        shutil.rmtree(scratch)
        report.seconds = time.perf_counter() - t0
        meta["seconds"] = round(report.seconds, 3)
        (tmp / CONVERSION_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if owner is not None:
            owner.close()
            (tmp / OWNER_FILE).unlink()
        _swap_into_place(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        restore_sigterm()
        if owner is not None:
            owner.close()
    report.seconds = time.perf_counter() - t0
    return report


def _skip_dict(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "where": p.where, "reason": p.message, "image_id": p.image_id,
            "annotation_id": p.annotation_id}


# ---------------------------------------------------------------------------------------------- cache
# The options that define a window's frames: a folder made with others holds windows a model was not made for.
_WINDOW_OPTIONS = ("num_frames", "frame_rate")

_OPTION_DEFAULTS = {
    name: p.default for name, p in inspect.signature(convert_dataset).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("overwrite", "show_progress")
}


def conversion_cache_key(data_root: str | Path, **options) -> str:
    """Hash of the resolved source path, the full option set and every source file's size and mtime."""
    unknown = set(options) - set(_OPTION_DEFAULTS)
    if unknown:
        raise ThermalDataError(f"unknown conversion option(s) {sorted(unknown)}; expected {sorted(_OPTION_DEFAULTS)}")
    root = Path(data_root).expanduser().resolve()
    opts = {**_OPTION_DEFAULTS, **options}
    if opts.get("frame_rate") is None:  # the keys of datasets cached before frame_rate existed stay the same
        opts.pop("frame_rate", None)
    files = []
    for sub in ("frames", "annotations"):
        for f in sorted((root / sub).glob("*")):
            if f.is_file():
                st = f.stat()
                files.append([f"{sub}/{f.name}", st.st_size, st.st_mtime_ns])
    payload = json.dumps({"source": str(root), "options": opts, "files": files, "version": FORMAT_VERSION},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$THERMAL_HF_CACHE/converted`` if the variable is set, else ``~/.cache/thermal_hf/converted``: the
    variable names thermal-hf's cache root, as for the weights (``$THERMAL_HF_CACHE/weights``)."""
    root = os.environ.get("THERMAL_HF_CACHE")
    return (Path(root) / "converted" if root else DEFAULT_CACHE_DIR).expanduser()


def ensure_converted(path_or_raw: str | Path, cache_dir: str | Path | None = None, *, asked_by: str = "recipe",
                     **options) -> Path:
    """Path of a converted dataset for ``path_or_raw``.

    A converted folder is returned as is (a warning is given if ``options`` differ from how it was made), a Hub
    dataset repo id (``ORG/NAME``, see `thermal_hf.data.location`) as its downloaded snapshot;
    a raw folder is converted once into ``cache_dir`` (default ``$THERMAL_HF_CACHE/converted`` or
    ``~/.cache/thermal_hf/converted``) under a key of the source path, options and source file sizes/mtimes,
    and reused afterwards. ``asked_by`` names who asks for ``options`` in the error a converted folder of other
    windows gets: ``"recipe"`` (training: set it to the folder's values) or ``"model"`` (evaluation: the model
    takes only the windows it was trained on).
    """
    from .location import resolve_dataset_location

    path = resolve_dataset_location(path_or_raw)  # a Hub dataset repo id: its downloaded snapshot
    if is_converted_dataset(path):
        recorded = read_conversion_info(path).get("options", {})
        # An option a folder does not record was made with its default (frame_rate came later: absent = None).
        recorded = {**{k: v for k, v in _OPTION_DEFAULTS.items() if k == "frame_rate"}, **recorded}
        differing = {k: (recorded.get(k), v) for k, v in options.items() if k in recorded and recorded[k] != v}
        window = {k: v for k, v in differing.items() if k in _WINDOW_OPTIONS}
        if window:  # a model trained or scored on windows it was not made for: padded or cut, silently
            asked = " ".join(f"--{k} {v[1]}" for k, v in window.items() if v[1] is not None)
            def said(key, value):
                return f"{key} none (consecutive recorded frames)" if value is None else f"{key} {value}"

            last = ("or set the recipe to the folder's values" if asked_by == "recipe" else
                    f"not this folder: the {asked_by} takes the windows it was trained on")
            raise ThermalDataError(
                f"{path} holds windows made with " + ", ".join(said(k, v[0]) for k, v in window.items())
                + ", but " + ", ".join(said(k, v[1]) for k, v in window.items()) + f" were asked for (the {asked_by}): "
                "give the raw dataset folder (converted once with the asked options), convert again (`thermal-hf "
                f"convert RAW OUT {asked}`), {last}"
            )
        if differing:
            warnings.warn(f"{path} is already converted with different options {differing} (recorded, requested); "
                          "using it as is", stacklevel=2)
        return path
    if not path.exists():  # a typo in the path: say so, not "neither converted nor raw"
        raise ThermalDataError(f"dataset {path}: folder not found (expected a raw dataset with frames/ and "
                               f"annotations/, or a converted one with {CONVERSION_FILE})")
    if not _is_raw_dataset(path):
        raise ThermalDataError(f"{path}: neither a converted thermal-hf dataset ({CONVERSION_FILE}) nor a raw dataset "
                               "folder (frames/ and annotations/)")
    key = conversion_cache_key(path, **options)
    out = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out = out / f"{path.resolve().name}-{key}"
    if is_converted_dataset(out):
        try:
            load_converted(out)  # memory-mapped: reads the split files' headers only
        except ThermalDataError as err:  # a cache entry damaged since (disk full, a file removed): made again
            warnings.warn(f"{err}; converting {path} again", stacklevel=2)
            convert_dataset(path, out, overwrite=True, **options)
    else:
        convert_dataset(path, out, overwrite=True, **options)
    return out


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="thermal-hf convert",
        description="Convert thermal HDF5 recordings + COCO keyframe annotations into a datasets.DatasetDict "
                    "(train/validation) saved with save_to_disk. Frames are stored raw and bit-exact.",
    )
    p.add_argument("data_root", metavar="DATA_ROOT", help="raw dataset folder (frames/*.h5, annotations/*.json)")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="where to write the converted dataset (atomically)")
    p.add_argument("--target", choices=TARGETS, default="person",
                   help="person: one sample per person annotation (default); keyframe: one sample per keyframe "
                        "labelled with its persons' most common class, ties broken by the LOWEST category id")
    p.add_argument("--num_frames", type=int, default=64,
                   help="window length: num_frames//2 before the keyframe, the keyframe, the rest after (default 64)")
    p.add_argument("--frame_rate", type=float, default=None, metavar="FPS",
                   help="resample every window on the recording's timestamps at FPS frames per second (nearest "
                        "recorded frame); default: every recorded frame")
    p.add_argument("--split_by", choices=SPLIT_BY, default="annotations",
                   help="annotations: the train/val files as given (default); recording: whole recordings per split")
    p.add_argument("--val_fraction", type=float, default=0.2,
                   help="with --split_by recording: fraction of recordings for validation (default 0.2, >= 1 each)")
    p.add_argument("--seed", type=int, default=0, help="seed of the recording split (default 0)")
    p.add_argument("--skip_invalid", action="store_true",
                   help="skip unusable samples and list them in the report instead of failing")
    p.add_argument("--invalid_floor", type=float, default=-50.0,
                   help="deg C below which a pixel counts as invalid in the invalid_fraction column (default -50)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT_DIR even if it is not a converted dataset, or one converted with other options "
                   "or from another source")
    p.add_argument("--report_json", metavar="PATH", help="also write the report as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report_json = Path(args.report_json).expanduser() if args.report_json else None
    if report_json is not None:  # checked before the conversion, which can take long
        why = ("is a folder" if report_json.is_dir() else "its folder does not exist"
               if not report_json.parent.is_dir() else "its folder is not writable"
               if not os.access(report_json.parent, os.W_OK) else None)
        if why:
            print(f"error: --report_json {args.report_json}: {why}", file=sys.stderr)
            return 2
    try:
        report = convert_dataset(
            args.data_root, args.output_dir, target=args.target, num_frames=args.num_frames,
            frame_rate=args.frame_rate, split_by=args.split_by,
            val_fraction=args.val_fraction, seed=args.seed, skip_invalid=args.skip_invalid,
            invalid_floor=args.invalid_floor, overwrite=args.overwrite,
        )
    except ThermalDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the hidden folder is removed on the way out; OUTPUT_DIR is renamed in only at the end
        print(f"\ninterrupted: {args.output_dir} is as it was (a conversion is renamed into place only when it is "
              "complete); run the same command again", file=sys.stderr)
        return 130
    print(report.format())
    if report_json is not None:
        try:
            report_json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        except OSError as err:
            print(f"error: --report_json {args.report_json}: {err.strerror or err} (the dataset itself was written)",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
