"""Read thermal HDF5 recordings and COCO-style keyframe annotations, and validate them all up front.

A raw dataset folder looks like (see ``../shared/datasets/README.md``)::

    ROOT/frames/<sensor_id>.h5        datasets `frames` float32 [N, H, W] (deg C), `timestamps` int64 [N] (ms)
    ROOT/annotations/train.json       COCO-style: images (= keyframes), annotations (= persons), categories
    ROOT/annotations/val.json
    ROOT/annotations/class_mapping.json   optional; must agree with the categories

An image's ``sensor_id`` names its recording file ``frames/<sensor_id>.h5``; the recording's name is the file
stem. Nothing here assumes 40x60 frames or 14 classes: both come from the files.

`DatasetSource.open` checks everything before anything is converted and reports *every* problem at once,
each naming the file, the key or image id, and what was expected. Problems come in two kinds:

* fatal: the folder itself is unusable (no annotation files, unreadable JSON, inconsistent categories);
* sample-level: one keyframe or person annotation cannot be used (its recording is missing or corrupt,
  `frame_idx` out of range, unknown `category_id`, bbox outside 0..1, duplicate image id, ...). These are errors
  by default; with ``skip_invalid=True`` the affected samples are left out and listed in ``source.skipped``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ThermalDataError

# annotation file stem -> split name used in the converted DatasetDict
SPLIT_FILES: dict[str, tuple[str, ...]] = {"train": ("train",), "validation": ("val", "validation")}

# How many problems one error message lists before summarising the rest (all are kept on the exception).
_MAX_LISTED = 50


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is and what was expected."""

    file: str
    where: str
    message: str
    fatal: bool = False
    image_id: str | None = None
    annotation_id: Any = None

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "where": self.where, "reason": self.message, "image_id": self.image_id,
                "annotation_id": self.annotation_id}


def format_problems(root: Path | str, problems: list[Problem], *, can_skip: bool, what: str = "") -> str:
    """The problems listed under one heading; ``what`` says what became of them (e.g. "left out of these counts")."""
    lines = [f"{len(problems)} problem(s) {what + ', ' if what else ''}in the dataset folder {root}:"]
    lines += [f"  - {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    if can_skip:
        lines.append("Fix them, or pass skip_invalid=True (CLI: --skip_invalid) to leave the affected samples out.")
    return "\n".join(lines)


class DataValidationError(ThermalDataError):
    """`ThermalDataError` carrying the full list of `Problem`s found."""

    def __init__(self, message: str, problems: list[Problem]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclass(frozen=True)
class KeyframeImage:
    """One annotated frame (a COCO image)."""

    id: str
    sensor_id: str
    frame_idx: int
    timestamp: int | None
    width: int | None
    height: int | None
    file: str


@dataclass(frozen=True)
class PersonAnnotation:
    """One person in a keyframe (a COCO annotation). ``bbox`` is YOLO ``[cx, cy, w, h]`` normalised to 0..1."""

    id: Any
    image_id: str
    category_id: int
    bbox: tuple[float, float, float, float]
    object_id: int
    file: str


@dataclass
class AnnotationSet:
    """The usable images and person annotations of one annotation file, plus the problems found in it."""

    split: str
    path: Path
    categories: list[Category]
    images: list[KeyframeImage] = field(default_factory=list)
    annotations: list[PersonAnnotation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # images with at least one unusable person annotation: their keyframe label would be ill-defined
    tainted_image_ids: set[str] = field(default_factory=set)
    # annotations without an object_id, numbered in their keyframe (`_number_people`)
    numbered_people: int = 0


class Recording:
    """One HDF5 recording, opened lazily (each read opens the file, so objects are cheap and picklable)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.stem

    def __repr__(self) -> str:
        return f"Recording({str(self.path)!r})"

    @cached_property
    def _meta(self) -> dict[str, Any]:
        with h5py.File(self.path, "r") as f:
            frames = f["frames"]
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            return {"shape": tuple(frames.shape), "attrs": attrs}

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._meta["attrs"])

    @property
    def sensor_id(self) -> str:
        return str(self._meta["attrs"].get("sensor_id", self.name))

    @property
    def num_frames(self) -> int:
        return int(self._meta["shape"][0])

    @property
    def height(self) -> int:
        return int(self._meta["shape"][1])

    @property
    def width(self) -> int:
        return int(self._meta["shape"][2])

    @cached_property
    def timestamps(self) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return np.asarray(f["timestamps"][:], dtype=np.int64)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as float32 ``(n, H, W)``, exactly as stored."""
        with h5py.File(self.path, "r") as f:
            return np.asarray(f["frames"][start:stop], dtype=np.float32)

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """All frames and timestamps in one read (a recording is a few MB; converting reads each file once)."""
        with h5py.File(self.path, "r") as f:
            return np.asarray(f["frames"][:], dtype=np.float32), np.asarray(f["timestamps"][:], dtype=np.int64)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def inspect_recording(path: Path, *, check_frames: bool = True, rel: str | None = None) -> list[Problem]:
    """Every problem with one recording file (empty list = usable).

    With ``check_frames`` every chunk of ``frames`` is decompressed once, which is what finds truncated or
    corrupt files (h5py opens those happily and only fails when the damaged chunk is read).
    """
    rel = rel or str(path)
    if not path.is_file():
        return [Problem(rel, "file", "recording named by the annotations is missing (expected an HDF5 file here)")]
    problems: list[Problem] = []
    try:
        with h5py.File(path, "r") as f:
            frames = f.get("frames")
            stamps = f.get("timestamps")
            if not isinstance(frames, h5py.Dataset):
                problems.append(Problem(rel, "frames", "missing dataset 'frames' (expected float32 [N, H, W])"))
            else:
                if frames.ndim != 3:
                    problems.append(Problem(rel, "frames", f"has rank {frames.ndim} shape {frames.shape}; "
                                            "expected rank 3 [N, H, W]"))
                if frames.dtype != np.float32:
                    problems.append(Problem(rel, "frames", f"has dtype {frames.dtype}; expected float32 (deg C)"))
                if frames.ndim == 3 and 0 in frames.shape:
                    problems.append(Problem(rel, "frames", f"has shape {frames.shape}: no frame or no pixel; expected "
                                            "[N, H, W] with N, H, W >= 1"))
            if not isinstance(stamps, h5py.Dataset):
                problems.append(Problem(rel, "timestamps", "missing dataset 'timestamps' (expected int64 [N], ms)"))
            else:
                if stamps.ndim != 1:
                    problems.append(Problem(rel, "timestamps", f"has rank {stamps.ndim} shape {stamps.shape}; "
                                            "expected rank 1 [N]"))
                elif not np.issubdtype(stamps.dtype, np.integer):
                    problems.append(Problem(rel, "timestamps", f"has dtype {stamps.dtype}; expected int64 (ms)"))
                elif stamps.dtype.kind == "u" and stamps.shape[0] and int(stamps[:].max()) > np.iinfo(np.int64).max:
                    problems.append(Problem(rel, "timestamps", "has values beyond int64; expected int64 (ms)"))
                else:
                    ts = stamps[:].astype(np.int64)  # unsigned differences would wrap instead of going negative
                    back = np.flatnonzero(np.diff(ts) < 0)
                    if back.size:
                        i = int(back[0])
                        problems.append(Problem(rel, "timestamps", f"go backwards {back.size} time(s), first at index "
                                                f"{i + 1} ({int(ts[i])} -> {int(ts[i + 1])}); expected non-decreasing"))
                    if isinstance(frames, h5py.Dataset) and frames.ndim >= 1 and stamps.shape[0] != frames.shape[0]:
                        problems.append(Problem(rel, "timestamps", f"has {stamps.shape[0]} entries but frames has "
                                                f"{frames.shape[0]}; expected one timestamp per frame"))
            if check_frames and not problems and isinstance(frames, h5py.Dataset):
                step = (frames.chunks or (64,))[0] * 4
                for start in range(0, frames.shape[0], step):
                    try:
                        frames[start:start + step]
                    except Exception as exc:  # h5py raises OSError/RuntimeError for damaged chunks
                        problems.append(Problem(rel, "frames", f"cannot read frames {start}..{start + step - 1} "
                                                f"({exc}); the file is truncated or corrupt"))
                        break
    except OSError as exc:
        problems.append(Problem(rel, "file", f"cannot be opened as HDF5 ({exc}); the file is truncated or corrupt"))
    return problems


def _read_json(path: Path, rel: str) -> tuple[Any, list[Problem]]:
    try:
        return json.loads(path.read_text()), []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [Problem(rel, "file", f"is not readable JSON ({exc})", fatal=True)]


def _find_annotation_file(root: Path, split: str) -> Path | None:
    if split not in SPLIT_FILES:
        raise ThermalDataError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    for stem in SPLIT_FILES[split]:
        path = root / "annotations" / f"{stem}.json"
        if path.is_file():
            return path
    return None


def _parse_categories(raw: Any, rel: str) -> tuple[list[Category], list[Problem]]:
    if not isinstance(raw, list) or not raw:
        return [], [Problem(rel, "categories", "missing or empty; expected a list of {id, name}", fatal=True)]
    cats, problems = [], []
    for i, c in enumerate(raw):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            problems.append(Problem(rel, f"categories[{i}]", f"is {c!r}; expected {{'id': int, 'name': str}}", fatal=True))
        else:
            cats.append(Category(int(c["id"]), c["name"]))
    cats.sort(key=lambda c: c.id)
    names = Counter(c.name for c in cats)
    for name, n in names.items():
        if n > 1 or not name.strip():
            what = f"name {name!r} is given to {n} categories" if n > 1 else "a category has an empty name"
            problems.append(Problem(rel, "categories", f"{what}; expected one distinct name per category (they "
                                    "become the class names)", fatal=True))
    ids = [c.id for c in cats]
    if not problems and ids != list(range(len(ids))):
        problems.append(Problem(rel, "categories", f"ids are {ids}; expected unique ids 0..{len(ids) - 1} "
                                "(they become ClassLabel indices)", fatal=True))
    return cats, problems


def _parse_bbox(value: Any) -> tuple[float, ...] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    if any(isinstance(v, (bool, str)) or not isinstance(v, (int, float)) for v in value):
        return None  # "0.5" or true are not coordinates
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return box if all(math.isfinite(v) for v in box) else None


def load_annotations(root: str | Path, split: str, categories: list[Category] | None = None) -> AnnotationSet:
    """Parse ``annotations/{train,val}.json`` of ``root`` for ``split`` ("train" or "validation").

    Problems local to one image or annotation are collected in ``.problems`` (nothing is raised for them);
    a missing or unreadable file, or bad categories, raise `DataValidationError`. Checks against the
    recordings (frame_idx range, missing files) happen in `DatasetSource.open`.
    """
    root = Path(root)
    path = _find_annotation_file(root, split)
    if path is None:
        names = " or ".join(f"annotations/{s}.json" for s in SPLIT_FILES[split])
        raise DataValidationError(f"{root}: missing {names} (expected COCO-style keyframe annotations)", [])
    rel = str(path.relative_to(root))
    data, problems = _read_json(path, rel)
    if data is not None and not isinstance(data, dict):
        problems.append(Problem(rel, "file", "top level is not an object; expected {images, annotations, categories}",
                                fatal=True))
    if problems:
        raise DataValidationError(format_problems(root, problems, can_skip=False), problems)
    cats, cat_problems = _parse_categories(data.get("categories"), rel)
    if cat_problems:
        raise DataValidationError(format_problems(root, cat_problems, can_skip=False), cat_problems)
    if categories is not None and [(c.id, c.name) for c in cats] != [(c.id, c.name) for c in categories]:
        p = Problem(rel, "categories", f"differ from the other annotation files: {[c.name for c in cats]} vs "
                    f"{[c.name for c in categories]}; expected the same categories in every file", fatal=True)
        raise DataValidationError(format_problems(root, [p], can_skip=False), [p])

    out = AnnotationSet(split=split, path=path, categories=cats)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            p = Problem(rel, key, f"missing or not a list; expected a list of COCO {key}", fatal=True)
            raise DataValidationError(format_problems(root, [p], can_skip=False), [p])

    id_counts = Counter(str(im.get("id")) for im in data["images"] if isinstance(im, dict))
    seen: set[str] = set()
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im:
            out.problems.append(Problem(rel, f"images[{i}]", "has no 'id'; expected {id, sensor_id, frame_idx, ...}"))
            continue
        image_id = str(im["id"])
        if id_counts[image_id] > 1:
            if image_id not in seen:
                out.problems.append(Problem(rel, f"image {image_id}", f"image id appears {id_counts[image_id]} times; "
                                            "expected unique image ids", image_id=image_id))
            seen.add(image_id)
            continue
        sensor, frame_idx = im.get("sensor_id"), im.get("frame_idx")
        if not isinstance(sensor, str) or not sensor or "/" in sensor or "\\" in sensor or sensor in (".", ".."):
            out.problems.append(Problem(rel, f"image {image_id}", f"sensor_id is {sensor!r}; expected the recording "
                                        "name (frames/<sensor_id>.h5, no folder)", image_id=image_id))
            continue
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, int):
            out.problems.append(Problem(rel, f"image {image_id}", f"frame_idx is {frame_idx!r}; expected an integer "
                                        "row of the recording", image_id=image_id))
            continue
        ts = im.get("timestamp")
        out.images.append(KeyframeImage(
            id=image_id, sensor_id=sensor, frame_idx=frame_idx, timestamp=int(ts) if isinstance(ts, int) else None,
            width=im.get("width") if isinstance(im.get("width"), int) else None,
            height=im.get("height") if isinstance(im.get("height"), int) else None, file=rel,
        ))

    image_ids = {im.id for im in out.images}
    bad_image_ids = set(id_counts) - image_ids
    valid_cat_ids = {c.id for c in cats}
    cat_names = {c.id: c.name for c in cats}
    ann_id_counts = Counter(str(a["id"]) for a in data["annotations"] if isinstance(a, dict) and "id" in a)
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            out.problems.append(Problem(rel, f"annotations[{i}]", f"is {a!r}; expected an object"))
            continue
        ann_id = a.get("id", i)
        image_id = str(a.get("image_id"))
        where = f"annotation {ann_id} (image {image_id})"
        if "id" in a and ann_id_counts[str(ann_id)] > 1:  # a copied entry would become a second sample
            out.problems.append(Problem(rel, where, f"annotation id appears {ann_id_counts[str(ann_id)]} times; "
                                        "expected unique annotation ids", image_id=image_id, annotation_id=ann_id))
            out.tainted_image_ids.add(image_id)
            continue
        if image_id not in image_ids:
            if image_id not in bad_image_ids:  # a broken image was reported already
                out.problems.append(Problem(rel, where, "refers to an image id that is not in 'images'; expected "
                                            "every annotation's image to exist", image_id=image_id, annotation_id=ann_id))
            continue
        cat = a.get("category_id")
        box = _parse_bbox(a.get("bbox"))
        reasons = []
        if isinstance(cat, bool) or not isinstance(cat, int) or cat not in valid_cat_ids:
            reasons.append(f"category_id {cat!r} is not in the categories (expected one of {sorted(valid_cat_ids)})")
        elif "category_name" in a and a["category_name"] != cat_names[cat]:
            reasons.append(f"category_name {a['category_name']!r} contradicts category_id {cat} "
                           f"({cat_names[cat]!r}); expected both to name the same category")
        if box is None:
            reasons.append(f"bbox {a.get('bbox')!r} is not 4 finite numbers [cx, cy, w, h]")
        elif not all(0.0 <= v <= 1.0 for v in box):
            reasons.append(f"bbox {list(box)} is outside 0..1; expected YOLO [cx, cy, w, h] normalised to the frame")
        elif box[2] <= 0.0 or box[3] <= 0.0:
            reasons.append(f"bbox {list(box)} has no area; expected a width and height > 0")
        if reasons:
            out.problems.append(Problem(rel, where, "; ".join(reasons), image_id=image_id, annotation_id=ann_id))
            out.tainted_image_ids.add(image_id)
            continue
        obj = a.get("object_id")
        obj = None if obj == -1 and not isinstance(obj, bool) else obj  # -1: "unknown", as absent
        if obj is not None and (isinstance(obj, bool) or not isinstance(obj, int) or obj < 0):
            out.problems.append(Problem(rel, where, f"object_id {obj!r} is not a non-negative integer (the person's "
                                        "number in its keyframe)", image_id=image_id, annotation_id=ann_id))
            out.tainted_image_ids.add(image_id)
            continue
        out.annotations.append(PersonAnnotation(
            id=ann_id, image_id=image_id, category_id=int(cat), bbox=box,  # type: ignore[arg-type]
            object_id=-1 if obj is None else int(obj), file=rel,
        ))
    out.annotations, out.numbered_people = _number_people(out.annotations)
    return out


def _number_people(annotations: list[PersonAnnotation]) -> tuple[list[PersonAnnotation], int]:
    """Give the people without an ``object_id`` (plain COCO has none) the next free numbers of their keyframe, in
    file order: a person sample is known by it (its own box for the crop, its vote). Returns the annotations and
    how many were numbered."""
    used: dict[str, set[int]] = {}
    for a in annotations:
        if a.object_id >= 0:
            used.setdefault(a.image_id, set()).add(a.object_id)
    out, numbered = [], 0
    for a in annotations:
        if a.object_id < 0:
            taken = used.setdefault(a.image_id, set())
            a = dataclasses.replace(a, object_id=next(i for i in range(len(taken) + 1) if i not in taken))
            taken.add(a.object_id)
            numbered += 1
        out.append(a)
    return out, numbered


@dataclass
class DatasetSource:
    """A validated raw dataset folder: its categories, recordings and per-split annotations.

    Build it with `DatasetSource.open`. ``skipped`` lists the sample-level problems that were tolerated
    (only non-empty with ``skip_invalid=True``); ``warnings`` lists oddities that do not block anything.
    """

    root: Path
    categories: list[Category]
    splits: dict[str, AnnotationSet]
    recordings: dict[str, Recording]
    skipped: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.categories]

    @classmethod
    def open(cls, root: str | Path, *, skip_invalid: bool = False, check_frames: bool = True) -> DatasetSource:
        """Read and validate ``root``; raise `DataValidationError` (a ThermalDataError) listing every problem."""
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ThermalDataError(f"{root}: dataset folder not found (expected frames/ and annotations/ inside)")
        missing = [d for d in ("frames", "annotations") if not (root / d).is_dir()]
        if missing:
            raise ThermalDataError(f"{root}: missing folder(s) {', '.join(missing)}/ (expected frames/*.h5 and "
                                   "annotations/{train,val}.json)")
        fatal: list[Problem] = []
        splits: dict[str, AnnotationSet] = {}
        categories: list[Category] | None = None
        for split in SPLIT_FILES:
            try:
                splits[split] = load_annotations(root, split, categories)
                categories = splits[split].categories
            except DataValidationError as exc:
                fatal += exc.problems or [Problem(str(root), "annotations", str(exc), fatal=True)]
        if categories is not None:
            fatal += _check_class_mapping(root, categories)
        if fatal:
            raise DataValidationError(format_problems(root, fatal, can_skip=False), fatal)
        assert categories is not None

        problems: list[Problem] = [p for s in splits.values() for p in s.problems]
        # the same image id in two files would put one keyframe in both splits
        owner: dict[str, str] = {}
        for s in splits.values():
            dup = [im for im in s.images if im.id in owner]
            for im in dup:
                problems.append(Problem(im.file, f"image {im.id}", f"image id also appears in {owner[im.id]}; "
                                        "expected unique image ids across splits", image_id=im.id))
            bad = {im.id for im in dup}
            for im in s.images:
                owner.setdefault(im.id, im.file)
            s.images = [im for im in s.images if im.id not in bad]
            s.annotations = [a for a in s.annotations if a.image_id not in bad]
        # one keyframe under two image ids would be two samples (in two splits: a test window seen in training)
        keyframe_owner: dict[tuple[str, int], KeyframeImage] = {}
        for s in splits.values():
            dup = set()
            for im in s.images:
                first = keyframe_owner.setdefault((im.sensor_id, im.frame_idx), im)
                if first is not im:
                    problems.append(Problem(im.file, f"image {im.id}", f"is frames/{im.sensor_id}.h5 row {im.frame_idx}, "
                                            f"like image {first.id} of {first.file}; expected one image per keyframe",
                                            image_id=im.id))
                    dup.add(im.id)
            s.images = [im for im in s.images if im.id not in dup]
            s.annotations = [a for a in s.annotations if a.image_id not in dup]

        # recordings: validate each referenced file once
        recordings: dict[str, Recording] = {}
        rec_problems: dict[str, list[Problem]] = {}
        warns: list[str] = []
        for s in splits.values():
            for im in s.images:
                if im.sensor_id in rec_problems:
                    continue
                path = root / "frames" / f"{im.sensor_id}.h5"
                rec_problems[im.sensor_id] = inspect_recording(path, check_frames=check_frames,
                                                               rel=f"frames/{im.sensor_id}.h5")
                if not rec_problems[im.sensor_id]:
                    recordings[im.sensor_id] = Recording(path)
        cascade: list[Problem] = []  # keyframes lost because their recording is unusable
        for s in splits.values():
            keep = []
            for im in s.images:
                rp = rec_problems[im.sensor_id]
                if rp:
                    cascade.append(Problem(im.file, f"image {im.id}", f"recording frames/{im.sensor_id}.h5 is "
                                           "unusable (see its own entry)", image_id=im.id))
                    continue
                rec = recordings[im.sensor_id]
                if not 0 <= im.frame_idx < rec.num_frames:
                    problems.append(Problem(im.file, f"image {im.id}", f"frame_idx {im.frame_idx} is outside the "
                                            f"recording frames/{im.sensor_id}.h5 (expected 0..{rec.num_frames - 1})",
                                            image_id=im.id))
                    continue
                if (im.height, im.width) not in ((None, None), (rec.height, rec.width)):
                    warns.append(f"{im.file}: image {im.id}: width x height {im.width}x{im.height} differs from the "
                                 f"recording's {rec.width}x{rec.height}; using the recording")
                if im.timestamp is not None and int(rec.timestamps[im.frame_idx]) != im.timestamp:
                    warns.append(f"{im.file}: image {im.id}: timestamp {im.timestamp} != frames/{im.sensor_id}.h5 "
                                 f"timestamps[{im.frame_idx}] = {int(rec.timestamps[im.frame_idx])}")
                keep.append(im)
            kept_ids = {im.id for im in keep}
            s.images = keep
            s.annotations = [a for a in s.annotations if a.image_id in kept_ids]
        for s in splits.values():
            if s.numbered_people:
                warns.append(f"{s.path.relative_to(root)}: {s.numbered_people} annotation(s) have no object_id; each "
                             "is numbered by its order among its keyframe's people")
        unused = sorted(p.stem for p in (root / "frames").glob("*.h5") if p.stem not in rec_problems)
        if unused:
            warns.append(f"frames/: {len(unused)} recording(s) no usable keyframe refers to, left out: "
                         f"{', '.join(unused[:10])}"
                         f"{' ...' if len(unused) > 10 else ''}")
        for split, stems in SPLIT_FILES.items():
            present = [f"annotations/{stem}.json" for stem in stems if (root / "annotations" / f"{stem}.json").is_file()]
            if len(present) > 1:
                warns.append(f"{split}: {' and '.join(present)} both exist; only {present[0]} is read")
        rec_list = [p for ps in rec_problems.values() for p in ps]
        if (rec_list or problems) and not skip_invalid:
            listed = rec_list + problems
            message = format_problems(root, listed, can_skip=True)
            if cascade:
                message += f"\n({len(cascade)} keyframe(s) of the unusable recordings above cannot be used.)"
            raise DataValidationError(message, listed + cascade)
        problems = rec_list + cascade + problems
        for w in warns[:20]:
            warnings.warn(w, stacklevel=2)
        return cls(root=root, categories=categories, splits=splits, recordings=recordings,
                   skipped=problems, warnings=warns)


def _check_class_mapping(root: Path, categories: list[Category]) -> list[Problem]:
    path = root / "annotations" / "class_mapping.json"
    if not path.is_file():
        return []
    rel = "annotations/class_mapping.json"
    data, problems = _read_json(path, rel)
    if problems:
        return problems
    names = [c.name for c in categories]
    classes = data.get("classes") if isinstance(data, dict) else None
    mapping = data.get("class_to_id") if isinstance(data, dict) else None
    if classes is not None and list(classes) != names:
        problems.append(Problem(rel, "classes", f"is {classes}; expected the annotation categories in id order {names}",
                                fatal=True))
    if isinstance(mapping, dict) and mapping != {c.name: c.id for c in categories}:
        problems.append(Problem(rel, "class_to_id", "does not match the annotation categories' {name: id}", fatal=True))
    return problems
