"""Slide a model over whole recordings: ``thermal-hf predict`` -> ``timeline.csv`` + ``timeline.png``.

CLI::

    thermal-hf predict --model MODEL_DIR RECORDING.h5 [MORE.h5 ...] [--stride 8] [--batch_size 8]
                       [--annotations annotations/val.json] [--device auto] --output_dir OUT

Windows of ``num_frames`` consecutive frames (from the model config) start every ``stride`` frames; the last
window is aligned to the end of the recording so the tail is covered, and a recording shorter than a window gives
one window padded like training windows. Frames are read from the HDF5 file through a rolling buffer: each
batch reads only the rows it adds to the previous one, so memory stays at about
``(batch_size - 1) * stride + num_frames`` frames whatever the recording's length.

A model trained on windows resampled in time (its processor's ``frame_rate``) gets its windows the same way:
``num_frames`` instants ``1 / frame_rate`` s apart on the file's timestamps, each the nearest recorded frame; a
window starts every ``stride / frame_rate`` seconds and the last one ends at the last timestamp. Each batch reads
only the rows its windows span.

Every window goes through the model's ``ThermalVideoProcessor`` (the training preprocessing, including
invalid-pixel repair), and its scores are the pipeline's (softmax).

Outputs, per recording (directly in OUT for one recording, in ``OUT/<recording name>/`` for several):

- ``timeline.csv``: one row per window: ``window``, ``start_frame``, ``end_frame`` (inclusive), ``centre_frame``
  (the frame the window is centred on, as ``keyframe_index`` in training; for a model with a ``frame_rate`` the
  windows lie on a time grid from the first timestamp and ``centre_frame`` is the recorded frame nearest the
  window's middle instant, so the window is close to, not always the same as, the one centred on that frame's
  time), ``start_time_ms`` / ``end_time_ms`` /
  ``centre_time_ms`` (the recording's own timestamps), ``start_s`` / ``end_s`` / ``centre_s`` (seconds since the
  recording's first frame), ``duration_s`` and ``max_gap_s`` (irregular sensor timing shows here),
  ``invalid_fraction`` (share of invalid pixels repaired), ``top_label``, ``score``, then ``prob_<class>`` for
  every class.
- ``timeline.png``: the predicted action over time (colour = confidence), the top score below it, time gaps over
  ``--gap_s`` shaded, and the annotated keyframes of ``--annotations`` overlaid.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_hf.cli_parser import CommandParser
from thermal_hf.errors import ThermalDataError
from thermal_hf.models.thermal_slowfast.video_processing_thermal_slowfast import (
    ThermalVideoProcessor,
    open_recording,
    recording_frames,
)

logger = logging.getLogger(__name__)


def resolve_device(device: str | None = "auto"):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--device {device}: expected auto, cpu, cuda or cuda:N ({err})") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu or auto")
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return resolved


def is_local_model_path(model_dir: str | Path) -> bool:
    """Whether ``model_dir`` names a local folder rather than a Hub id ``ORG/NAME``.

    Local: it exists; it starts with ``.``, ``/`` or ``~``; it ends with a path separator; it has other than one
    ``/``; or its first component is a local folder (``outputs/run`` when ``outputs/`` exists), so a missing run
    folder is reported as missing instead of being looked up on the Hub.
    """
    text = str(model_dir)
    if Path(text).expanduser().exists():
        return True
    if text.startswith((".", "/", "~")) or text.endswith(("/", os.sep)) or text.count("/") != 1:
        return True
    return Path(text.split("/")[0]).is_dir()


def load_model_and_processor(model_dir: str | Path, device: str | None = "auto"):
    """Model (eval mode, on ``device``) and its ``ThermalVideoProcessor`` from a folder, checkpoint or Hub id."""
    from transformers import AutoModelForVideoClassification, AutoVideoProcessor

    import thermal_hf  # noqa: F401  registers the Auto classes

    local = Path(str(model_dir)).expanduser()
    is_local = is_local_model_path(model_dir)
    if is_local and not local.is_dir():
        # Caught here: from_pretrained would take `outputs/run` for a Hub id and retry huggingface.co for ~30 s,
        # then report a connection error that never says the folder is missing.
        raise ThermalDataError(
            f"no model folder at {model_dir} (expected config.json + model.safetensors from a training run's "
            "output_dir, a Trainer checkpoint folder, or a Hub id ORG/NAME)"
        )
    if is_local and not (local / "config.json").is_file():
        raise ThermalDataError(
            f"{model_dir}: no config.json; expected a model folder written by save_pretrained, a Trainer checkpoint "
            "folder, or a Hub id ORG/NAME"
        )
    model = AutoModelForVideoClassification.from_pretrained(str(model_dir))
    try:
        processor = AutoVideoProcessor.from_pretrained(str(model_dir))
    except OSError as err:
        raise ThermalDataError(
            f"{model_dir}: no video processor (video_preprocessor_config.json): {err}. Save the ThermalVideoProcessor "
            "beside the model (training does)."
        ) from None
    return model.to(resolve_device(device)).eval(), processor


def window_starts(total: int, num_frames: int, stride: int) -> np.ndarray:
    """Start frames of the sliding windows; the last one ends at the recording's last frame."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if total <= num_frames:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, total - num_frames + 1, stride, dtype=np.int64)
    if starts[-1] != total - num_frames:
        starts = np.append(starts, total - num_frames)
    return starts


def time_window_plan(timestamps: np.ndarray, num_frames: int, frame_rate: float, stride: int) -> np.ndarray:
    """Frame indices ``(W, num_frames)`` of the sliding windows resampled at ``frame_rate`` on ``timestamps``.

    Window k starts at the frame nearest ``k * stride / frame_rate`` s after the first timestamp, and its instants
    run from that frame's own timestamp, so the pipeline's ``start_frame=`` of a timeline row reads the same window
    (`ThermalVideoProcessor`, as the training windows are anchored on their keyframe's timestamp). The last window
    starts at the first frame from which it reaches the last timestamp, so the tail is covered. A recording
    shorter than one window gives one window centred on its middle (edge frames repeat, as in training; the
    processor's read of a whole recording).
    """
    from thermal_hf.data.windows import nearest_frames

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    stamps = np.asarray(timestamps, dtype=np.float64)
    step = 1000.0 / float(frame_rate)
    span = (num_frames - 1) * step
    first, last = float(stamps[0]), float(stamps[-1])
    if last - first <= span:
        return nearest_frames(stamps, ((first + last) / 2 + (np.arange(num_frames) - num_frames // 2) * step)[None])
    anchors = nearest_frames(stamps, first + np.arange(0.0, last - first - span + 1e-6, stride * step))
    final = int(np.searchsorted(stamps, last - span - 1e-6, side="left"))  # first frame from which it reaches
    anchors = np.unique(np.append(anchors[anchors < final], final))
    return nearest_frames(stamps, stamps[anchors][:, None] + np.arange(num_frames) * step)


@dataclass
class _Batch:
    starts: np.ndarray  # window start frames
    clips: list[np.ndarray]  # raw Celsius (n, H, W), n == num_frames except for a too-short recording
    timestamps: list[np.ndarray]  # per window, int64 ms (empty arrays when the file has none)
    indices: list[np.ndarray]  # per window, the recording's frame index of each of its frames


def iter_window_batches(path: Path, num_frames: int, stride: int, batch_size: int) -> Iterator[_Batch]:
    """Yield batches of raw windows, reading each frame row of the HDF5 file once (rolling buffer)."""
    with open_recording(path) as handle:
        frames = recording_frames(handle, path)
        stamps = handle["timestamps"] if "timestamps" in handle else None
        total = int(frames.shape[0])
        if stamps is not None and stamps.shape[0] != total:
            raise ThermalDataError(f"{path}: 'timestamps' has {stamps.shape[0]} entries for {total} frames")
        starts = window_starts(total, num_frames, stride)
        buf = np.empty((0, *frames.shape[1:]), dtype=np.float32)
        buf_ts = np.empty(0, dtype=np.int64)
        buf_lo = 0
        for b in range(0, len(starts), batch_size):
            batch = starts[b : b + batch_size]
            lo, hi = int(batch[0]), min(int(batch[-1]) + num_frames, total)
            buf_hi = buf_lo + len(buf)
            keep = slice(max(lo - buf_lo, 0), len(buf)) if lo < buf_hi else slice(0, 0)
            read_from = max(lo, buf_hi)
            new = np.asarray(frames[read_from:hi], dtype=np.float32)
            new_ts = np.asarray(stamps[read_from:hi], dtype=np.int64) if stamps is not None else np.empty(0, np.int64)
            buf = np.concatenate([buf[keep], new])
            buf_ts = np.concatenate([buf_ts[keep], new_ts])
            buf_lo = lo
            clips, ts = [], []
            for s in batch:
                a, e = int(s) - lo, min(int(s) + num_frames, total) - lo
                clips.append(buf[a:e])
                ts.append(buf_ts[a:e])
            yield _Batch(batch, clips, ts, [np.arange(int(s), min(int(s) + num_frames, total)) for s in batch])


def iter_time_window_batches(path: Path, num_frames: int, frame_rate: float, stride: int,
                             batch_size: int) -> Iterator[_Batch]:
    """Yield batches of raw windows resampled at ``frame_rate`` (`time_window_plan`), one read per batch."""
    from thermal_hf.models.thermal_slowfast.video_processing_thermal_slowfast import read_timestamps

    with open_recording(path) as handle:
        frames = recording_frames(handle, path)
        total = int(frames.shape[0])
        stamps = read_timestamps(handle, path, total, frame_rate)
        plan = time_window_plan(stamps, num_frames, frame_rate, stride)
        for b in range(0, len(plan), batch_size):
            batch = plan[b : b + batch_size]
            lo, hi = int(batch.min()), int(batch.max()) + 1
            block = np.asarray(frames[lo:hi], dtype=np.float32)
            yield _Batch(batch[:, 0], [block[idx - lo] for idx in batch], [stamps[idx] for idx in batch], list(batch))


def predict_recording(
    model,
    processor,
    path: str | Path,
    *,
    stride: int = 8,
    batch_size: int = 8,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``timeline.csv`` for one recording (see the module docstring for the columns)."""
    import torch
    from tqdm.auto import tqdm

    from thermal_hf.data.transforms import invalid_mask
    from thermal_hf.pipelines import postprocess_probabilities

    path = Path(path)
    if not path.is_file():
        raise ThermalDataError(f"recording not found: {path}")
    num_frames = int(model.config.num_frames)
    frame_rate = getattr(processor, "frame_rate", None)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    rows: list[dict[str, Any]] = []
    first_ts: int | None = None
    with open_recording(path) as handle:
        total = int(recording_frames(handle, path).shape[0])  # a missing or malformed 'frames' is an error naming it
        stamps = handle.get("timestamps")
        if stamps is not None and (not hasattr(stamps, "shape") or stamps.shape != (total,)
                                   or not np.issubdtype(stamps.dtype, np.integer)):
            raise ThermalDataError(f"{path}: 'timestamps' is not int64 [{total}] (milliseconds, one per frame)")
        stamps = None if stamps is None else np.asarray(stamps[:], dtype=np.int64)
    if stamps is not None and np.any(np.diff(stamps) < 0):
        logger.warning("%s: 'timestamps' go backwards; the timeline's times follow them as they are", path)
    if stamps is not None and len(stamps):
        first_ts = int(stamps[0])
    else:
        logger.warning("%s: no 'timestamps' dataset; times are left empty, frame indices still given", path)
    if frame_rate is None:
        n_windows = len(window_starts(max(total, 1), num_frames, stride))
        batches = iter_window_batches(path, num_frames, stride, batch_size)
    else:  # iter_time_window_batches raises a clear error for a file without timestamps
        n_windows = len(time_window_plan(stamps, num_frames, frame_rate, stride)) if first_ts is not None else None
        batches = iter_time_window_batches(path, num_frames, frame_rate, stride, batch_size)
    bar = tqdm(total=n_windows, desc=path.stem, unit="window", disable=(not progress) if progress is not None else None)
    with torch.inference_mode():
        for batch in batches:
            inputs = processor(batch.clips, num_frames=num_frames, return_tensors="pt")
            logits = model(pixel_values=inputs["pixel_values"].to(device=device, dtype=dtype)).logits
            probs = postprocess_probabilities(logits.float().cpu().numpy())
            for idx, clip, ts, p in zip(batch.indices, batch.clips, batch.timestamps, probs):
                n = len(clip)
                # The model's middle frame: of a window shorter than the model's (a short recording), the frame the
                # processor's edge padding puts there.
                middle = int(ThermalVideoProcessor.length_indices(n, num_frames)[num_frames // 2]) if n else 0
                row: dict[str, Any] = {
                    "window": len(rows),
                    "start_frame": int(idx[0]),
                    "end_frame": int(idx[-1]),
                    "centre_frame": int(idx[middle]),
                }
                if len(ts):
                    centre = ts[middle]
                    gaps = np.diff(ts) if n > 1 else np.zeros(1, np.int64)
                    row.update(
                        start_time_ms=int(ts[0]), end_time_ms=int(ts[-1]), centre_time_ms=int(centre),
                        start_s=(int(ts[0]) - first_ts) / 1000.0, end_s=(int(ts[-1]) - first_ts) / 1000.0,
                        centre_s=(int(centre) - first_ts) / 1000.0, duration_s=(int(ts[-1]) - int(ts[0])) / 1000.0,
                        max_gap_s=float(gaps.max()) / 1000.0,
                    )
                else:
                    row.update({k: "" for k in ("start_time_ms", "end_time_ms", "centre_time_ms", "start_s", "end_s",
                                                 "centre_s", "duration_s", "max_gap_s")})
                top = int(np.argmax(p))
                row.update(
                    invalid_fraction=round(float(invalid_mask(clip, processor.invalid_floor).mean()), 6),
                    top_label=names[top], score=float(p[top]),
                )
                row.update({f"prob_{name}": float(v) for name, v in zip(names, p)})
                rows.append(row)
            bar.update(len(batch.starts))
    bar.close()
    return rows


def write_timeline_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def load_keyframes(annotation_file: Path, recording: Path) -> list[dict[str, Any]]:
    """COCO keyframes of one recording: [{frame_idx, timestamp, labels}] (an image's sensor_id names its file)."""
    try:
        coco = json.loads(Path(annotation_file).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ThermalDataError(f"{annotation_file}: cannot read COCO annotations, a UTF-8 JSON file ({err})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise ThermalDataError(f"{annotation_file}: expected a COCO dict with 'images' and 'annotations' lists")
    cats = {c.get("id"): c.get("name") for c in coco.get("categories") or [] if isinstance(c, dict)}
    if not all(isinstance(item, dict) for key in ("images", "annotations") for item in coco.get(key) or []):
        raise ThermalDataError(f"{annotation_file}: every entry of 'images' and 'annotations' must be an object")
    labels: dict[Any, list[str]] = {}
    for ann in coco.get("annotations") or []:
        name = ann.get("category_name") or cats.get(ann.get("category_id"), str(ann.get("category_id")))
        labels.setdefault(ann.get("image_id"), []).append(str(name))
    keys = {recording.stem}
    out = []
    for im in coco["images"]:
        if str(im.get("sensor_id")) in keys and isinstance(im.get("frame_idx"), int):
            out.append({"frame_idx": im["frame_idx"], "timestamp": im.get("timestamp"),
                        "labels": labels.get(im.get("id"), [])})
    return sorted(out, key=lambda k: k["frame_idx"])


def plot_timeline(rows: list[dict[str, Any]], names: list[str], out: Path, *, title: str,
                  keyframes: list[dict[str, Any]] | None = None, timestamps: np.ndarray | None = None,
                  gap_s: float = 0.5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have_time = rows[0]["centre_s"] != ""
    x = np.array([r["centre_s"] if have_time else r["centre_frame"] for r in rows], dtype=float)
    y = np.array([names.index(r["top_label"]) for r in rows])
    score = np.array([r["score"] for r in rows], dtype=float)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]},
                                   layout="constrained")
    ax.plot(x, y, color="0.75", lw=1, drawstyle="steps-mid", zorder=1)
    points = ax.scatter(x, y, c=score, cmap="viridis", vmin=0, vmax=1, s=24, zorder=2, label="predicted (window centre)")
    if keyframes:
        t0 = timestamps[0] if timestamps is not None and len(timestamps) else None
        legend = "annotated keyframe"
        for kf in keyframes:
            kx = ((timestamps[kf["frame_idx"]] - t0) / 1000.0) if (have_time and t0 is not None) else kf["frame_idx"]
            for lab in kf["labels"]:
                if lab in names:
                    ax.scatter([kx], [names.index(lab)], marker="x", color="red", s=60, zorder=3, label=legend)
                    legend = None
    if have_time and timestamps is not None and len(timestamps) > 1:
        rel = (timestamps - timestamps[0]) / 1000.0
        for g in np.flatnonzero(np.diff(rel) > gap_s):
            for a in (ax, ax2):
                a.axvspan(rel[g], rel[g + 1], color="orange", alpha=0.2, lw=0)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(-0.5, len(names) - 0.5)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(points, ax=[ax, ax2], label="confidence")
    ax2.plot(x, score, color="tab:blue")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("top score")
    ax2.set_xlabel(f"time since first frame (s); shaded: gaps > {gap_s:g} s" if have_time else "frame index")
    fig.savefig(out, dpi=100)
    plt.close(fig)


def predict_files(model_dir, recordings: list[Path], output_dir: Path, *, stride=8, batch_size=8, annotations=None,
                  device="auto", gap_s=0.5, test_time_views: int | None = None, overwrite=False) -> list[Path]:
    """Run ``predict_recording`` on each file and write its timeline; return the output folders.
    ``test_time_views`` (1, 2, 4, 8) overrides the model's own ``config.test_time_views``. Earlier timelines in
    ``output_dir`` are refused unless ``overwrite``."""
    outs = timeline_folders(recordings, output_dir)
    earlier = [str(out / name) for out in outs for name in TIMELINE_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise ThermalDataError(f"--output_dir {output_dir} holds earlier timelines ({', '.join(earlier[:3])}"
                               f"{' ...' if len(earlier) > 3 else ''}); refusing to replace them (pass --overwrite / "
                               "overwrite=True, or choose another folder)")
    model, processor = load_model_and_processor(model_dir, device)
    if test_time_views is not None:
        model.set_test_time_views(test_time_views)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if getattr(processor, "frame_rate", None):  # before anything is written: every file needs usable timestamps
        from thermal_hf.models.thermal_slowfast.video_processing_thermal_slowfast import read_timestamps

        for path in recordings:
            with open_recording(Path(path)) as handle:
                read_timestamps(handle, path, int(recording_frames(handle, path).shape[0]), processor.frame_rate)
    output_dir.mkdir(parents=True, exist_ok=True)
    for path, out in zip(recordings, outs):
        path = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        rows = predict_recording(model, processor, path, stride=stride, batch_size=batch_size)
        write_timeline_csv(rows, out / "timeline.csv")
        keyframes, stamps = None, None
        with open_recording(path) as handle:
            if "timestamps" in handle:
                stamps = np.asarray(handle["timestamps"][:], dtype=np.int64)  # N int64: tiny next to the frames
            total = int(handle["frames"].shape[0])
        if annotations is not None:
            keyframes = load_keyframes(annotations, path)
            if not keyframes:
                print(f"warning: {annotations}: no keyframe of {path.stem} (no image whose sensor_id is "
                      f"{path.stem!r}); nothing drawn", file=sys.stderr)
            outside = [kf["frame_idx"] for kf in keyframes if not 0 <= kf["frame_idx"] < total]
            if outside:  # the annotations of another recording of the same name, or of a longer copy
                print(f"warning: {annotations}: {len(outside)} keyframe(s) of {path.stem} outside its {total} frames "
                      f"(frame_idx {outside[:5]}{' ...' if len(outside) > 5 else ''}); not drawn", file=sys.stderr)
                keyframes = [kf for kf in keyframes if 0 <= kf["frame_idx"] < total]
        plot_timeline(rows, names, out / "timeline.png", title=f"{path.name}: predicted action ({len(rows)} windows, "
                      f"stride {stride})", keyframes=keyframes, timestamps=stamps, gap_s=gap_s)
        print(f"{path.name}: {len(rows)} windows -> {out / 'timeline.csv'}, {out / 'timeline.png'}")
    return outs


#: What predict writes for each recording.
TIMELINE_FILES = ("timeline.csv", "timeline.png")


def timeline_folders(recordings: list[Path], output_dir: Path) -> list[Path]:
    """Where each recording's timeline goes: ``output_dir`` for one recording, ``output_dir/<stem>`` for several."""
    if len(recordings) == 1:
        return [Path(output_dir)]
    outs, used = [], set()
    for path in map(Path, recordings):
        name, n = path.stem, 2
        while name in used:  # two files of one name (other folders, or the same file twice): one folder each
            name, n = f"{path.stem}_{n}", n + 1
        used.add(name)
        outs.append(Path(output_dir) / name)
    return outs


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="thermal-hf predict", description=__doc__.split("\n\n")[0])
    p.add_argument("recordings", nargs="+", type=Path, help="HDF5 recording(s) (frames + timestamps)")
    p.add_argument("--model", required=True, help="model folder, Trainer checkpoint or Hub id")
    p.add_argument("--output_dir", required=True, type=Path)
    p.add_argument("--stride", type=int, default=8,
                   help="frames between window starts (default 8); for a model with a frame_rate, frames of the "
                        "model's rate, i.e. stride / frame_rate seconds")
    p.add_argument("--batch_size", type=int, default=8, help="windows per forward pass (default 8)")
    p.add_argument("--annotations", type=Path, help="COCO annotation file whose keyframes are overlaid")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--gap_s", type=float, default=0.5, help="shade frame gaps longer than this, in seconds (default 0.5)")
    p.add_argument("--test_time_views", type=int, metavar="{1,2,4,8}",
                   help="views of each window averaged (mirrors, turns; checked by the model's config); default: the "
                        "model's config.test_time_views")
    p.add_argument("--overwrite", action="store_true", help="replace earlier timelines in --output_dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
        if args.stride < 1:
            raise ValueError(f"--stride must be >= 1, got {args.stride}")
        resolve_device(args.device)  # a device this machine lacks fails here, before the model is loaded
        if args.annotations is not None:  # an unreadable file fails here, not after the first recording's work
            load_keyframes(args.annotations, args.recordings[0])
        for path in args.recordings:
            if not path.is_file():
                raise ThermalDataError(f"recording not found: {path}")
            with open_recording(path):  # a corrupt file fails here, before the model is loaded
                pass
        predict_files(args.model, args.recordings, args.output_dir, stride=args.stride, batch_size=args.batch_size,
                      annotations=args.annotations, device=args.device, gap_s=args.gap_s,
                      test_time_views=args.test_time_views, overwrite=args.overwrite)
    except (ThermalDataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # each finished recording's timeline was printed as it was written
        print("\ninterrupted: the timelines printed above are complete; run the command again with --overwrite "
              "(or on the remaining recordings) for the rest", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
