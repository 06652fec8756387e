"""Synthetic thermal action recordings in exactly the users' on-disk format.

``generate_dataset(out)`` / ``thermal-hf synth OUT`` writes::

    out/frames/<SENSOR>_R<n>.h5        frames float32 [N,H,W] (gzip 4, chunks (64,H,W)), timestamps, frame_seqs, attrs
    out/frames/sensor_info.json        per-recording metadata
    out/annotations/train.json, val.json   COCO-style keyframes + person annotations (YOLO bboxes)
    out/annotations/class_mapping.json
    out/dataset_info.json              what generated it (no wall-clock time: files are bit-identical per seed)

What the scenes look like (measured facts of the real data in ``../shared/datasets/README.md``):

- A room near 17 C with a gradient, a warm radiator strip, a cool window, a bed/couch that is warmer than the
  floor, fixed-pattern and per-frame sensor noise, values quantised to 0.1 C like the real sensor.
- People are warm bodies (torso 29-31 C, head 32-34 C, soft edges) whose shape and motion depend on the action:
  standing = small round static blob; walking = small blob moving at 4.5-7 px/s; sitting = medium blob; crouching =
  compact larger blob, cooler; kneeling = torso plus a cooler leg lobe; bending = elongated blob that slowly
  oscillates (bending up and down); lying with risk = long blob on the floor; lying on the bed/couch = long, partly
  blanket-covered (cooler) blob on the warm bed; the three transitions morph one shape into the other over 2-3 s
  (standing <-> sitting; standing <-> lying on the floor, i.e. a fall or getting up; sitting <-> lying on the bed).
- Some recordings hold two people (each in their own half of the room, usually with different labels).
- Sensors named ``SY01`` drop packets like the real SL14 sensor: about 10 % of frames lose the tail of the frame in
  raster order (1 to 4 blocks of 24 % of the pixels) and read -273.2; frames right after a long gap drop more
  often. ``SY02`` sensors have no invalid pixels, like SL18.
- Irregular frame timing: a per-recording median gap of 40-165 ms with log-normal jitter, a 0.45-1.4 s gap roughly
  every tenth frame (as in the real files) and one or two 1.5-2.6 s gaps per ``SY01`` recording.

Class frequencies are imbalanced like the real data (``lying down-lying with risk`` most common, then
``standing``), but every class the generator produces gets a useful share of keyframes. Like the real release,
three of the 14 categories never appear: ``leaning``, ``lower position-other`` and ``other`` (there is no defined
look for them); they stay in the categories list so the label space matches the real data.

Keyframes keep at least half a 64-frame window from the recording's edges, except that every third recording has
one keyframe within 12 frames of an edge so edge padding is exercised. Everything is drawn from one
``np.random.Generator`` seeded by ``seed``: the same arguments give bit-identical files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from thermal_hf.cli_parser import CommandParser
from thermal_hf.data.categories import DEFAULT_CATEGORY_NAMES
from thermal_hf.data.staging import OWNER_FILE, hold_owner_lock, raise_on_sigterm, remove_abandoned
from thermal_hf.errors import ThermalDataError

INVALID_VALUE = -273.2
_BASE_HEIGHT, _BASE_WIDTH = 40, 60  # body sizes below are in pixels of a 40x60 frame; other sizes are scaled
_EPOCH_MS = 1_760_000_000_000  # synthetic recordings start here (mid-October 2025, like the real release)
_MAC = {"SY01": "02:00:5e:10:00:01", "SY02": "02:00:5e:10:00:02"}

# ---------------------------------------------------------------------------------------------------------------
# Actions: state name -> category id in DEFAULT_CATEGORY_NAMES
# ---------------------------------------------------------------------------------------------------------------
SITTING, STANDING, WALKING, LYING_RISK, LYING_BED = "sitting", "standing", "walking", "lying_risk", "lying_bed"
TRANS_NORMAL, TRANS_RISK, TRANS_BED = "trans_normal", "trans_risk", "trans_bed"
KNEELING, BENDING, CROUCHING = "kneeling", "bending", "crouching"

STATE_CATEGORY: dict[str, int] = {
    SITTING: 0,
    STANDING: 1,
    WALKING: 2,
    LYING_RISK: 3,
    LYING_BED: 4,
    TRANS_NORMAL: 6,
    TRANS_RISK: 7,
    TRANS_BED: 8,
    KNEELING: 10,
    BENDING: 11,
    CROUCHING: 12,
}
TRANSITIONS = (TRANS_NORMAL, TRANS_RISK, TRANS_BED)
UNUSED_CATEGORY_IDS = (5, 9, 13)  # leaning, lower position-other, other: absent, as in the real release

# Body shapes: up to 3 lobes (dx, dy along the body axis in px, semi-axis along, semi-axis across, temperature C).
# A lobe with zero size is absent; transitions interpolate these arrays, so every shape has exactly 3 rows.
_NO_LOBE = (0.0, 0.0, 0.0, 0.0, 0.0)
SHAPES: dict[str, np.ndarray] = {
    STANDING: np.array([(0, 0, 2.4, 2.4, 30.5), (0, 0, 1.3, 1.3, 33.5), _NO_LOBE]),
    WALKING: np.array([(0, 0, 3.0, 2.1, 30.5), (0.5, 0, 1.2, 1.2, 33.0), _NO_LOBE]),
    SITTING: np.array([(0, 0, 3.7, 3.1, 30.0), (-1.3, 0, 1.4, 1.4, 33.0), _NO_LOBE]),
    CROUCHING: np.array([(0, 0, 3.3, 3.3, 29.0), (0.9, 0, 1.2, 1.2, 31.0), _NO_LOBE]),
    KNEELING: np.array([(1.2, 0, 2.4, 2.4, 31.5), (1.2, 0, 1.2, 1.2, 33.5), (-2.4, 0, 2.8, 1.6, 28.0)]),
    BENDING: np.array([(0, 0, 4.7, 2.1, 30.5), (3.6, 0, 1.3, 1.3, 33.0), _NO_LOBE]),
    LYING_RISK: np.array([(0, 0, 7.2, 2.6, 29.0), (6.0, 0, 1.5, 1.5, 32.5), (-3.0, 0, 3.0, 1.6, 28.0)]),
    LYING_BED: np.array([(0, 0, 7.4, 3.2, 25.5), (6.2, 0, 1.5, 1.5, 33.0), (0, 0, 4.0, 2.6, 26.5)]),
}
# The shapes a transition morphs between (forward direction; scripts also use it backwards).
TRANSITION_ENDS = {TRANS_NORMAL: (STANDING, SITTING), TRANS_RISK: (STANDING, LYING_RISK), TRANS_BED: (SITTING, LYING_BED)}

# Scripts: realistic sequences of (state, min frames, max frames). The transition segments morph from the
# previous segment's shape to the next one's. "walk_to_bed" is walking with the bed's edge as target.
SCRIPTS: dict[str, list[tuple[str, int, int]]] = {
    "fall": [(STANDING, 20, 35), (TRANS_RISK, 18, 26), (LYING_RISK, 55, 90), (TRANS_RISK, 18, 26), (STANDING, 15, 25)],
    "walk": [(WALKING, 35, 60), (STANDING, 25, 40)],
    "sit_down": [(STANDING, 20, 30), (TRANS_NORMAL, 16, 24), (SITTING, 40, 60)],
    "stand_up": [(SITTING, 35, 50), (TRANS_NORMAL, 16, 24), (STANDING, 20, 35)],
    "kneel": [(KNEELING, 40, 60), (STANDING, 15, 25)],
    "bend": [(BENDING, 40, 55), (STANDING, 15, 25)],
    "crouch": [(CROUCHING, 40, 60), (STANDING, 15, 25)],
    "bed": [
        ("walk_to_bed", 20, 40),
        (SITTING, 20, 35),
        (TRANS_BED, 18, 26),
        (LYING_BED, 45, 70),
        (TRANS_BED, 18, 26),
        (SITTING, 15, 25),
    ],
}
PRIMARY_DECK = ("fall", "fall", "bed", "bed", "crouch", "kneel", "bend", "sit_down", "stand_up", "walk", "crouch")
SECONDARY_DECK = ("walk", "fall", "sit_down", "stand_up", "kneel", "bend", "crouch", "walk")

# Target share of annotated keyframes per state (the primary person's label decides which frames become keyframes):
# imbalanced like the real data, yet every class gets enough samples to learn from.
# The second person (in some recordings) adds mostly standing and walking on top of this.
KEYFRAME_SHARE = {
    LYING_RISK: 0.40,
    STANDING: 0.05,
    WALKING: 0.04,
    SITTING: 0.05,
    LYING_BED: 0.08,
    TRANS_NORMAL: 0.08,
    TRANS_RISK: 0.08,
    TRANS_BED: 0.08,
    KNEELING: 0.08,
    BENDING: 0.08,
    CROUCHING: 0.08,
}
BODY_SCALE = 1.25  # pixels per shape unit on a 40x60 frame: boxes come out near the real median (~11 x 8 px)


@dataclass
class _Segment:
    state: str
    start: int
    stop: int
    shape_from: str = ""
    shape_to: str = ""


@dataclass
class _Person:
    object_id: int
    zone: tuple[float, float, float, float]  # x0, x1, y0, y1 of allowed centres (px)
    first: int
    last: int  # present on frames first..last-1
    segments: list[_Segment] = field(default_factory=list)
    scale: float = 1.0
    temp_offset: float = 0.0
    speed: float = 5.0


@dataclass
class _Room:
    background: np.ndarray  # (H, W) static background temperature
    bed: tuple[float, float, float, float]  # x0, x1, y0, y1 in px
    noise_std: float
    drops_packets: bool


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------
def generate_dataset(
    output_dir: str | Path,
    *,
    recordings: int = 6,
    seed: int = 0,
    frames_per_recording: int = 480,
    height: int = 40,
    width: int = 60,
    keyframes_per_recording: int = 40,
    val_fraction: float = 0.2,
    category_names: Sequence[str] = DEFAULT_CATEGORY_NAMES,
    multi_person_fraction: float = 1 / 3,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the real data's on-disk format and return its folder.

    Args:
        output_dir: folder to create. Written atomically (a temporary sibling renamed at the end).
        recordings: number of HDF5 recordings; they alternate between two sensors, ``SY01`` (drops packets: invalid
            -273.2 tiles) and ``SY02`` (clean), named ``SY01_R1``, ``SY02_R1``, ``SY01_R2``, ...
        seed: everything is drawn from ``np.random.default_rng(seed)``; same arguments -> bit-identical files.
        frames_per_recording: frames per recording (the real ones hold 480-507).
        height, width: frame size (bodies are scaled with it; the real sensor is 40x60).
        keyframes_per_recording: annotated keyframes per recording (fewer when the recording is short).
        val_fraction: share of keyframes (images) put in ``val.json``, at random like the users' split.
        category_names: the category list written to the annotations, in id order. The generator's actions use
            ids 0-4, 6-8 and 10-12 of the users' 14 categories, so it must hold at least 13 names.
        multi_person_fraction: share of recordings with a second person.
        overwrite: replace an existing ``output_dir`` (otherwise an existing non-empty folder is an error).
    """
    output_dir = Path(output_dir)
    category_names = [str(name) for name in category_names]
    needed = max(STATE_CATEGORY.values()) + 1
    if len(category_names) < needed:
        raise ThermalDataError(
            f"category_names: the generator's actions use category ids up to {needed - 1}, so at least {needed} "
            f"names are needed; got {len(category_names)}"
        )
    if recordings < 1 or frames_per_recording < 8 or keyframes_per_recording < 1:
        raise ThermalDataError(
            f"generate_dataset: need recordings >= 1, frames_per_recording >= 8 and keyframes_per_recording >= 1; got "
            f"{recordings}, {frames_per_recording}, {keyframes_per_recording}"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise ThermalDataError(f"generate_dataset: val_fraction must be in [0, 1); got {val_fraction}")
    if not 0.0 <= multi_person_fraction <= 1.0:
        raise ThermalDataError(f"generate_dataset: multi_person_fraction must be in [0, 1]; got {multi_person_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ThermalDataError(f"generate_dataset: seed must be a non-negative integer; got {seed!r}")
    if output_dir.exists() and not output_dir.is_dir():
        raise ThermalDataError(f"{output_dir}: an existing file; give a folder for the dataset")
    if height < 8 or width < 8:
        raise ThermalDataError(f"generate_dataset: frames must be at least 8x8; got {height}x{width}")
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise ThermalDataError(f"{output_dir}: output folder exists and is not empty (pass overwrite=True / --overwrite)")

    rng = np.random.default_rng(seed)
    scale = min(height / _BASE_HEIGHT, width / _BASE_WIDTH)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(output_dir, ".tmp-")  # left by a generation that was killed outright
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    owner = hold_owner_lock(tmp)
    restore_sigterm = raise_on_sigterm()
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset is an ordinary folder
        (tmp / "frames").mkdir()
        (tmp / "annotations").mkdir()
        images: list[dict] = []
        annotations: list[dict] = []
        sensor_info: dict[str, dict] = {}
        start_ms = _EPOCH_MS + int(seed % 1000) * 86_400_000
        decks = {0: _Deck(PRIMARY_DECK, rng), 1: _Deck(SECONDARY_DECK, rng)}
        # Which recordings hold a second person: a fixed share, at least one when the share is positive.
        num_multi = int(round(multi_person_fraction * recordings))
        num_multi = max(num_multi, 1) if multi_person_fraction > 0 else 0
        multi_set = set(rng.permutation(recordings)[:num_multi].tolist())
        for index in range(recordings):
            sensor = "SY01" if index % 2 == 0 else "SY02"
            name = f"{sensor}_R{index // 2 + 1}"
            multi = index in multi_set
            recording = _simulate_recording(
                rng, name, sensor, frames_per_recording, height, width, scale, start_ms, decks, multi
            )
            start_ms = int(recording["timestamps"][-1]) + int(rng.integers(10_000, 30_000))
            _write_h5(tmp / "frames" / f"{name}.h5", name, sensor, recording)
            rec_images, rec_annotations = _annotate(
                rng, name, sensor, recording, keyframes_per_recording, height, width, category_names,
                edge_keyframe=index % 3 == 0,
            )
            images += rec_images
            annotations += rec_annotations
            sensor_info[name] = {
                "hdf5_path": f"{output_dir.name}/frames/{name}.h5",
                "mac_address": _MAC[sensor],
                "total_frames": frames_per_recording,
                "corrupted_frames": 0,
                "annotation_count": len(rec_images),
                "min_timestamp": int(recording["timestamps"][0]),
                "max_timestamp": int(recording["timestamps"][-1]),
            }
        for number, annotation in enumerate(annotations):
            annotation["id"] = number

        val_ids = _pick_val_images(rng, images, val_fraction)
        categories = [{"id": i, "name": n} for i, n in enumerate(category_names)]
        for split, description in (("train", "Training"), ("val", "Validation")):
            keep = {im["id"] for im in images if (im["id"] in val_ids) == (split == "val")}
            doc = {
                "images": [im for im in images if im["id"] in keep],
                "annotations": [a for a in annotations if a["image_id"] in keep],
                "categories": categories,
                "info": {
                    "description": f"Synthetic Thermal Sensor Human Action Dataset ({description})",
                    "version": "1.0",
                    "year": 2025,
                },
            }
            _write_json(tmp / "annotations" / f"{split}.json", doc)
        _write_json(
            tmp / "annotations" / "class_mapping.json",
            {"classes": category_names, "class_to_id": {n: i for i, n in enumerate(category_names)}},
        )
        _write_json(tmp / "frames" / "sensor_info.json", sensor_info)
        _write_json(
            tmp / "dataset_info.json",
            {
                "generator": "thermal_hf.data.synthetic",
                "configuration": {
                    "recordings": recordings,
                    "seed": seed,
                    "frames_per_recording": frames_per_recording,
                    "height": height,
                    "width": width,
                    "keyframes_per_recording": keyframes_per_recording,
                    "val_fraction": val_fraction,
                    "multi_person_fraction": multi_person_fraction,
                    "compression": "gzip",
                    "compression_level": 4,
                },
                "annotations": {
                    "images": len(images),
                    "val_images": len(val_ids),
                    "annotations": len(annotations),
                    "total_classes": len(category_names),
                    "unused_category_ids": [i for i in UNUSED_CATEGORY_IDS if i < len(category_names)],
                },
            },
        )
        if owner is not None:
            owner.close()
            (tmp / OWNER_FILE).unlink()
        if output_dir.exists():
            shutil.rmtree(output_dir)
        tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        restore_sigterm()
        if owner is not None:
            owner.close()
    return output_dir


# ---------------------------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------------------------
class _Deck:
    """Cycles through shuffled copies of a script list so every script is used before any repeats."""

    def __init__(self, scripts: Sequence[str], rng: np.random.Generator):
        self.scripts, self.rng, self.queue = list(scripts), rng, []

    def draw(self) -> str:
        if not self.queue:
            self.queue = [self.scripts[i] for i in self.rng.permutation(len(self.scripts))]
        return self.queue.pop()


def _timestamps(rng: np.random.Generator, num_frames: int, sensor: str, start_ms: int) -> np.ndarray:
    """Irregular frame times (ms): jittered median gap, a long gap about every 10th frame, a few very long ones."""
    median = float(rng.uniform(38, 96)) if sensor == "SY01" else float(rng.uniform(155, 166))
    gaps = median * np.exp(rng.normal(0.0, 0.3, size=num_frames - 1))
    phase = int(rng.integers(0, 10))
    periodic = np.arange(num_frames - 1) % 10 == phase
    periodic &= rng.random(num_frames - 1) < 0.9
    long_gap = (450, 1400) if sensor == "SY01" else (500, 570)
    gaps[periodic] = rng.uniform(*long_gap, size=int(periodic.sum()))
    if sensor == "SY01" and num_frames > 20:
        very_long = rng.choice(num_frames - 1, size=int(rng.integers(1, 3)), replace=False)
        gaps[very_long] = rng.uniform(1500, 2600, size=len(very_long))
    gaps = np.maximum(np.round(gaps), 8).astype(np.int64)
    return start_ms + np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)


def _make_room(rng: np.random.Generator, height: int, width: int, scale: float, sensor: str) -> _Room:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 17.0 + rng.uniform(-0.6, 0.6)
    gx, gy = rng.uniform(-1.0, 1.0, size=2)
    background = base + gx * (xx / width - 0.5) + gy * (yy / height - 0.5)
    # A cool window along one wall and a warm radiator strip along another.
    window = int(rng.integers(0, 2))
    win_cols = slice(0, max(1, int(2 * scale))) if window == 0 else slice(width - max(1, int(2 * scale)), width)
    background[int(height * 0.2) : int(height * 0.7), win_cols] -= rng.uniform(1.5, 2.5)
    background[: max(1, int(2 * scale)), int(width * 0.3) : int(width * 0.7)] += rng.uniform(3.0, 5.0)
    # The bed/couch: warmer than the floor, on the sensor's left or right third.
    bed_w, bed_h = 18.0 * scale, 10.0 * scale
    bx0 = 3.0 * scale if sensor == "SY01" else width - 3.0 * scale - bed_w
    by0 = float(rng.uniform(0.45, 0.65)) * (height - bed_h)
    bed = (bx0, bx0 + bed_w, by0, by0 + bed_h)
    inside = _soft_box(xx, yy, bed, 0.8 * scale)
    background += inside * rng.uniform(2.5, 3.5)
    if sensor == "SY01":  # a small hot appliance, as the real SL14 room has (values up to ~45 C)
        hy, hx = int(rng.integers(0, max(1, height // 5))), int(rng.integers(width // 3, width - 3))
        background[hy : hy + 2, hx : hx + 2] = rng.uniform(38.0, 44.0)
    background += rng.normal(0.0, 0.15, size=background.shape)  # fixed-pattern noise
    return _Room(background.astype(np.float32), bed, float(rng.uniform(0.22, 0.32)), sensor == "SY01")


def _soft_box(xx: np.ndarray, yy: np.ndarray, box: tuple[float, float, float, float], softness: float) -> np.ndarray:
    x0, x1, y0, y1 = box

    def ramp(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(v - lo) / softness)) * (1.0 / (1.0 + np.exp((v - hi) / softness)))

    return ramp(xx, x0, x1) * ramp(yy, y0, y1)


def _build_segments(
    rng: np.random.Generator, deck: _Deck, first: int, last: int, allow_bed: bool
) -> list[_Segment]:
    """Concatenate scripts from the deck until frames first..last-1 are covered."""
    steps: list[tuple[str, int]] = []
    total = last - first
    covered = 0
    while covered < total:
        name = deck.draw()
        if name == "bed" and not allow_bed:
            name = "sit_down"
        for state, lo, hi in SCRIPTS[name]:
            length = int(rng.integers(lo, hi + 1))
            steps.append((state, length))
            covered += length
    segments: list[_Segment] = []
    cursor = first
    for state, length in steps:
        if cursor >= last:
            break
        stop = min(cursor + length, last)
        segments.append(_Segment(state, cursor, stop))
        cursor = stop
    # Transition segments morph from the neighbouring shapes; a transition at a recording edge uses its own ends.
    for i, seg in enumerate(segments):
        if seg.state in TRANSITIONS:
            ends = TRANSITION_ENDS[seg.state]
            before = _shape_state(segments[i - 1].state) if i > 0 else ends[0]
            after = _shape_state(segments[i + 1].state) if i + 1 < len(segments) else ends[1]
            if before == after:  # cut short by the recording's end: morph towards the other end
                after = ends[1] if before == ends[0] else ends[0]
            seg.shape_from, seg.shape_to = before, after
    return segments


def _shape_state(state: str) -> str:
    return WALKING if state == "walk_to_bed" else state


def _label_state(state: str) -> str:
    return WALKING if state == "walk_to_bed" else state


def _simulate_recording(
    rng: np.random.Generator,
    name: str,
    sensor: str,
    num_frames: int,
    height: int,
    width: int,
    scale: float,
    start_ms: int,
    decks: dict[int, _Deck],
    multi: bool,
) -> dict:
    """Render one recording: returns frames (N,H,W) float32, timestamps, and per-person per-frame boxes/labels."""
    timestamps = _timestamps(rng, num_frames, sensor, start_ms)
    room = _make_room(rng, height, width, scale, sensor)
    margin = 3.0 * scale
    bed_on_left = room.bed[0] < width / 2
    full = (margin, width - margin, margin, height - margin)
    people = [_Person(0, full, 0, num_frames)]
    if multi:
        half = width / 2
        left, right = (margin, half - margin, margin, height - margin), (half + margin, width - margin, margin,
                                                                         height - margin)
        people[0].zone = left if bed_on_left else right
        first = min(int(rng.integers(0, max(1, num_frames // 4))), num_frames - 8)  # on screen for 8 frames at least
        last = num_frames - int(rng.integers(0, max(1, num_frames // 6)))
        people.append(_Person(1, right if bed_on_left else left, first, min(num_frames, max(last, first + 8))))
    for person in people:
        person.scale = float(rng.uniform(0.92, 1.08)) * BODY_SCALE * scale
        person.temp_offset = float(rng.normal(0.0, 0.6))
        person.speed = float(rng.uniform(4.5, 7.0)) * scale
        person.segments = _build_segments(rng, decks[min(person.object_id, 1)], person.first, person.last,
                                          allow_bed=person.object_id == 0)

    frames = np.repeat(room.background[None], num_frames, axis=0)
    drift = 0.15 * np.sin(np.linspace(0, rng.uniform(2, 6), num_frames) + rng.uniform(0, 6.3))
    frames += drift[:, None, None].astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tracks = {p.object_id: _track(rng, p, room, timestamps, width, height) for p in people}
    boxes = {p.object_id: np.full((num_frames, 4), np.nan, np.float32) for p in people}
    for t in range(num_frames):
        for person in people:
            pose = tracks[person.object_id][t]
            if pose is None:
                continue
            lobes, cx, cy, theta = pose
            boxes[person.object_id][t] = _render(frames[t], lobes, cx, cy, theta, xx, yy)
    frames += rng.normal(0.0, room.noise_std, size=frames.shape).astype(np.float32)
    frames = (np.round(frames * 10.0) / 10.0).astype(np.float32)  # the sensor reports 0.1 C steps
    if room.drops_packets:
        _drop_packets(rng, frames, timestamps)
    labels = {p.object_id: _frame_labels(p, num_frames) for p in people}
    return {"frames": frames, "timestamps": timestamps, "boxes": boxes, "labels": labels, "people": people}


def _frame_labels(person: _Person, num_frames: int) -> np.ndarray:
    """Per-frame state name ('' where the person is absent)."""
    labels = np.full(num_frames, "", dtype=object)
    for seg in person.segments:
        labels[seg.start : seg.stop] = _label_state(seg.state)
    return labels


def _track(
    rng: np.random.Generator, person: _Person, room: _Room, timestamps: np.ndarray, width: int, height: int
) -> list:
    """Per-frame (lobes (3,5), cx, cy, theta) or None when the person is absent. Motion follows real time."""
    num_frames = len(timestamps)
    x0, x1, y0, y1 = person.zone
    bed_cx, bed_cy = (room.bed[0] + room.bed[1]) / 2, (room.bed[2] + room.bed[3]) / 2
    bed_edge = (bed_cx, min(room.bed[3] + 2.5 * person.scale, y1))
    lying_margin = 7.0 * person.scale

    def random_floor_point(margin: float = 0.0) -> tuple[float, float]:
        for _ in range(20):
            px = rng.uniform(x0 + margin, max(x0 + margin, x1 - margin))
            py = rng.uniform(y0 + margin * 0.5, max(y0 + margin * 0.5, y1 - margin * 0.5))
            if not (room.bed[0] - 3 <= px <= room.bed[1] + 3 and room.bed[2] - 3 <= py <= room.bed[3] + 3):
                return float(px), float(py)
        return float((x0 + x1) / 2), float((y0 + y1) / 2)

    poses: list = [None] * num_frames
    cx, cy = random_floor_point(lying_margin)
    theta = float(rng.uniform(-math.pi, math.pi))
    for seg in person.segments:
        state = seg.state
        length = seg.stop - seg.start
        target = bed_edge if state == "walk_to_bed" else random_floor_point(2.0)
        start_pos, start_theta = (cx, cy), theta
        end_pos, end_theta = (cx, cy), theta
        if state in TRANSITIONS:
            if seg.shape_to == LYING_RISK:  # falling: the body ends up lying on the floor along its fall direction
                end_theta = float(rng.uniform(-math.pi, math.pi))
                end_pos = _clamp(cx + 3.5 * person.scale * math.cos(end_theta),
                                 cy + 3.5 * person.scale * math.sin(end_theta), person.zone, lying_margin)
            elif seg.shape_to == LYING_BED:
                end_theta = 0.0 if rng.random() < 0.5 else math.pi
                end_pos = (bed_cx, bed_cy)
            elif seg.shape_from == LYING_BED:
                end_pos, end_theta = bed_edge, -math.pi / 2
            elif seg.shape_from == LYING_RISK:
                end_pos = _clamp(cx - 3.0 * person.scale * math.cos(theta), cy - 3.0 * person.scale * math.sin(theta),
                                 person.zone, 4.0 * person.scale)
        phase = float(rng.uniform(0, 2 * math.pi))
        for t in range(seg.start, seg.stop):
            dt = 0.0 if t == 0 else min((timestamps[t] - timestamps[t - 1]) / 1000.0, 1.5)
            progress = (t - seg.start + 0.5) / length
            seconds = (timestamps[t] - timestamps[seg.start]) / 1000.0
            if state in (WALKING, "walk_to_bed"):
                dx, dy = target[0] - cx, target[1] - cy
                dist = math.hypot(dx, dy)
                if dist < 1.0:
                    target = bed_edge if state == "walk_to_bed" else random_floor_point(2.0)
                    dx, dy = target[0] - cx, target[1] - cy
                    dist = max(math.hypot(dx, dy), 1e-6)
                step = min(person.speed * dt, dist)
                if dist > 1e-6:
                    cx, cy = cx + dx / dist * step, cy + dy / dist * step
                    theta = math.atan2(dy, dx)
                lobes = SHAPES[WALKING].copy()
                lobes[0, 2] *= 1.0 + 0.08 * math.sin(2 * math.pi * 1.8 * seconds + phase)  # gait
            elif state in TRANSITIONS:
                s = progress * progress * (3 - 2 * progress)  # smoothstep: slow-fast-slow, like a body moving
                lobes = (1 - s) * SHAPES[seg.shape_from] + s * SHAPES[seg.shape_to]
                cx = start_pos[0] + (end_pos[0] - start_pos[0]) * s
                cy = start_pos[1] + (end_pos[1] - start_pos[1]) * s
                theta = start_theta + _angle_diff(end_theta, start_theta) * s
            else:
                lobes = SHAPES[state].copy()
                if state == BENDING:  # bending down and up again, ~0.5 Hz
                    lobes[:, 2] *= 1.0 + 0.15 * math.sin(2 * math.pi * 0.5 * seconds + phase)
                    lobes[1, 0] *= 1.0 + 0.15 * math.sin(2 * math.pi * 0.5 * seconds + phase)
                cx += rng.normal(0.0, 0.08)  # sway / breathing
                cy += rng.normal(0.0, 0.08)
            lobes = lobes.copy()
            lobes[:, :4] *= person.scale
            lobes[:, 4] = np.where(lobes[:, 2] > 0, lobes[:, 4] + person.temp_offset, 0.0)
            lobes[:, 2:4] *= 1.0 + rng.normal(0.0, 0.02)
            poses[t] = (lobes, cx, cy, theta)
        if state in TRANSITIONS:
            cx, cy, theta = end_pos[0], end_pos[1], end_theta
    return poses


def _angle_diff(a: float, b: float) -> float:
    return (a - b + math.pi) % (2 * math.pi) - math.pi


def _clamp(x: float, y: float, zone: tuple[float, float, float, float], margin: float) -> tuple[float, float]:
    x0, x1, y0, y1 = zone
    mx, my = min(margin, (x1 - x0) / 2), min(margin * 0.6, (y1 - y0) / 2)
    return float(np.clip(x, x0 + mx, x1 - mx)), float(np.clip(y, y0 + my, y1 - my))


def _render(
    frame: np.ndarray, lobes: np.ndarray, cx: float, cy: float, theta: float, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
    """Draw a body (soft-edged ellipses, warmest wins) into ``frame`` in place; return its YOLO bbox."""
    height, width = frame.shape
    cos, sin = math.cos(theta), math.sin(theta)
    bx0, bx1, by0, by1 = math.inf, -math.inf, math.inf, -math.inf
    for dx, dy, a, b, temp in lobes:
        if a < 0.3 or b < 0.3:
            continue
        lx, ly = cx + dx * cos - dy * sin, cy + dx * sin + dy * cos
        ex, ey = math.sqrt((a * cos) ** 2 + (b * sin) ** 2), math.sqrt((a * sin) ** 2 + (b * cos) ** 2)
        r0, r1 = max(int(ly - ey - 3), 0), min(int(ly + ey + 4), height)
        c0, c1 = max(int(lx - ex - 3), 0), min(int(lx + ex + 4), width)
        if r0 >= r1 or c0 >= c1:
            continue
        px, py = xx[r0:r1, c0:c1] + 0.5 - lx, yy[r0:r1, c0:c1] + 0.5 - ly
        u, v = (px * cos + py * sin) / a, (-px * sin + py * cos) / b
        dist = np.sqrt(u * u + v * v)
        weight = 1.0 / (1.0 + np.exp((dist - 1.0) * 5.0))  # soft body edge, ~1 px wide
        patch = frame[r0:r1, c0:c1]
        np.maximum(patch, patch + (temp - patch) * weight, out=patch)
        bx0, bx1, by0, by1 = min(bx0, lx - ex), max(bx1, lx + ex), min(by0, ly - ey), max(by1, ly + ey)
    if not math.isfinite(bx0):
        return np.full(4, np.nan, np.float32)
    x0, x1 = min(max(bx0 - 0.5, 0.0), width), min(max(bx1 + 0.5, 0.0), width)
    y0, y1 = min(max(by0 - 0.5, 0.0), height), min(max(by1 + 0.5, 0.0), height)
    return np.array([(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height],
                    np.float32)


def _drop_packets(rng: np.random.Generator, frames: np.ndarray, timestamps: np.ndarray) -> None:
    """Mark dropped packets like the real SL14 sensor: the frame's raster tail, k blocks of 24 % of the pixels."""
    num_frames, height, width = frames.shape
    gaps = np.diff(timestamps, prepend=timestamps[0])
    prob = np.where(gaps > 400, 0.45, 0.05)
    hit = rng.random(num_frames) < prob
    blocks = rng.choice([1, 2, 3, 4], p=[0.62, 0.18, 0.14, 0.06], size=num_frames)
    block = int(round(0.24 * height * width))
    flat = frames.reshape(num_frames, -1)
    for t in np.flatnonzero(hit):
        flat[t, height * width - min(int(blocks[t]) * block, height * width - 1) :] = INVALID_VALUE


# ---------------------------------------------------------------------------------------------------------------
# Annotation and writing
# ---------------------------------------------------------------------------------------------------------------
def _annotate(
    rng: np.random.Generator,
    name: str,
    sensor: str,
    recording: dict,
    keyframes_per_recording: int,
    height: int,
    width: int,
    category_names: list[str],
    edge_keyframe: bool,
) -> tuple[list[dict], list[dict]]:
    """Choose keyframes (class shares as KEYFRAME_SHARE, away from segment boundaries) and annotate every person."""
    timestamps = recording["timestamps"]
    num_frames = len(timestamps)
    primary = recording["people"][0]
    edge = 32 if num_frames >= 64 + 2 * keyframes_per_recording else min(8, num_frames // 4)
    # Candidate frames sit inside a segment (away from its ends, so the window shows that action) and away from
    # the recording's edges; each label's candidates share that label's KEYFRAME_SHARE, whatever its duration.
    candidate_label = np.full(num_frames, "", dtype=object)
    for seg in primary.segments:
        length = seg.stop - seg.start
        inset = min(6, length // 3) if seg.state in TRANSITIONS else min(8, length // 4)
        lo, hi = max(seg.start + inset, edge), min(seg.stop - inset, num_frames - edge)
        if hi > lo:
            candidate_label[lo:hi] = _label_state(seg.state)
    weights = np.zeros(num_frames)
    for label in set(candidate_label.tolist()) - {""}:
        where = candidate_label == label
        weights[where] = KEYFRAME_SHARE[label] / where.sum()
    if weights.sum() == 0:
        weights[edge : num_frames - edge] = 1.0
    if weights.sum() == 0:
        weights[:] = 1.0
    count = min(keyframes_per_recording, int((weights > 0).sum()))
    chosen = set(rng.choice(num_frames, size=count, replace=False, p=weights / weights.sum()).tolist())
    if edge_keyframe and num_frames > 24:
        offset = int(rng.integers(1, 12))
        chosen.add(offset if rng.random() < 0.5 else num_frames - 1 - offset)

    images, annotations = [], []
    for frame_idx in sorted(chosen):
        timestamp = int(timestamps[frame_idx])
        image_id = f"{name}_{timestamp}"
        persons = []
        for person in recording["people"]:
            label = recording["labels"][person.object_id][frame_idx]
            box = recording["boxes"][person.object_id][frame_idx]
            if label and np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0:
                persons.append((person.object_id, label, box))
        if not persons:
            continue
        images.append(
            {
                "id": image_id,
                "sensor_id": name,
                "mac_address": _MAC[sensor],
                "timestamp": timestamp,
                "width": width,
                "height": height,
                "frame_idx": int(frame_idx),
            }
        )
        for object_id, label, box in persons:
            category_id = STATE_CATEGORY[label]
            # Annotators' boxes are a little loose; a box cut by the frame edge counts as partly obscured.
            jitter = rng.normal(0.0, 0.004, size=4)
            cx, cy, bw, bh = (float(v) for v in np.clip(box + jitter, 0.0, 1.0))
            bw, bh = min(bw, 2 * min(cx, 1 - cx)), min(bh, 2 * min(cy, 1 - cy))
            touches_edge = cx - bw / 2 < 0.01 or cx + bw / 2 > 0.99 or cy - bh / 2 < 0.01 or cy + bh / 2 > 0.99
            annotations.append(
                {
                    "id": -1,  # numbered across both splits at the end, like the real files
                    "image_id": image_id,
                    "bbox": [round(cx, 6), round(cy, 6), round(bw, 6), round(bh, 6)],
                    "category_id": category_id,
                    "category_name": category_names[category_id],
                    "object_id": int(object_id),
                    "attribute_obscured": "25%" if touches_edge else "0%",
                }
            )
    return images, annotations


def _pick_val_images(rng: np.random.Generator, images: list[dict], val_fraction: float) -> set[str]:
    num_val = int(round(len(images) * val_fraction))
    if val_fraction > 0 and len(images) >= 2:
        num_val = min(max(num_val, 1), len(images) - 1)
    order = rng.permutation(len(images))[:num_val]
    return {images[i]["id"] for i in order}


def _write_h5(path: Path, name: str, sensor: str, recording: dict) -> None:
    frames, timestamps = recording["frames"], recording["timestamps"]
    num_frames, height, width = frames.shape
    created = _dt.datetime.fromtimestamp(int(timestamps[-1]) / 1000.0 + 600, tz=_dt.timezone.utc).isoformat()
    with h5py.File(path, "w", track_order=False) as handle:
        handle.create_dataset(
            "frames", data=frames, dtype="float32", chunks=(min(64, num_frames), height, width),
            compression="gzip", compression_opts=4, track_times=False,
        )
        handle.create_dataset("timestamps", data=timestamps.astype(np.int64), track_times=False)
        handle.create_dataset("frame_seqs", data=timestamps.astype(np.int64), track_times=False)
        attrs = {
            "compression": "gzip",
            "compression_level": np.int64(4),
            "corrupted_count": np.int64(0),
            "created_at": created,  # derived from the data, not the clock: files are reproducible
            "frame_height": np.int64(height),
            "frame_width": np.int64(width),
            "mac_address": _MAC[sensor],
            "max_timestamp": np.int64(timestamps[-1]),
            "min_timestamp": np.int64(timestamps[0]),
            "sensor_id": name,
            "total_frames": np.int64(num_frames),
        }
        for key, value in attrs.items():
            handle.attrs[key] = value


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        prog="thermal-hf synth",
        description="Write a synthetic thermal action dataset (HDF5 recordings + COCO keyframes) in the same "
        "format as the real data.",
    )
    parser.add_argument("output_dir", type=Path, help="folder to create")
    parser.add_argument("--recordings", type=int, default=6, help="number of recordings (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed -> identical files (default 0)")
    parser.add_argument("--frames_per_recording", type=int, default=480, help="frames per recording (default 480)")
    parser.add_argument("--height", type=int, default=40, help="frame height in pixels (default 40)")
    parser.add_argument("--width", type=int, default=60, help="frame width in pixels (default 60)")
    parser.add_argument("--keyframes_per_recording", type=int, default=40, help="annotated keyframes per recording, fewer in a short one (default 40)")
    parser.add_argument("--val_fraction", type=float, default=0.2, help="share of keyframes in val.json (default 0.2)")
    parser.add_argument("--multi_person_fraction", type=float, default=1 / 3, help="share of recordings with 2 people (default 1/3)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT_DIR if it exists")
    args = parser.parse_args(argv)
    try:
        out = generate_dataset(
            args.output_dir,
            recordings=args.recordings,
            seed=args.seed,
            frames_per_recording=args.frames_per_recording,
            height=args.height,
            width=args.width,
            keyframes_per_recording=args.keyframes_per_recording,
            val_fraction=args.val_fraction,
            multi_person_fraction=args.multi_person_fraction,
            overwrite=args.overwrite,
        )
    except ThermalDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train = json.loads((out / "annotations" / "train.json").read_text())
    val = json.loads((out / "annotations" / "val.json").read_text())
    print(
        f"wrote {out}: {args.recordings} recordings x {args.frames_per_recording} frames, "
        f"train {len(train['images'])} keyframes / {len(train['annotations'])} persons, "
        f"val {len(val['images'])} keyframes / {len(val['annotations'])} persons"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
