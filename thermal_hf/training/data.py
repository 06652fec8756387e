"""The training/evaluation dataset `Trainer` sees: converted windows -> model inputs.

`ThermalClipDataset` reads one split of a converted `DatasetDict` through `ClipReader` (the fast path: frames
come straight out of the memory-mapped Arrow buffer, thousands of random rows/s on 2 cores, against a few
hundred for the numpy format and ~180/s for `set_transform`, which hands the transform Python lists; see
BENCHMARKS.md) and applies, per clip, exactly the steps of `ThermalVideoProcessor`:

    processor.clean (a no-op skipped for windows without invalid pixels) -> processor.crop_to_person (with a
        person_crop_size) -> processor.fit_length
        -> augment (training only) -> processor.normalize

so training, evaluation and the pipeline share one preprocessing. It returns only the model's inputs,
``{"pixel_values": (T, H, W) float32, "labels": int}``; because it is not a `datasets.Dataset`, `Trainer`'s
``remove_unused_columns`` cannot strip a column the collator needs (it only filters the collated keys, and both
are `forward` arguments), so a recipe may set it either way.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from thermal_hf.data.convert import ClipReader
from thermal_hf.data.transforms import augment, has_invalid


def _process_rank() -> int:
    # Set by torchrun / accelerate launch; 0 for a single process.
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


class SamplerDraw(int):
    """An index a sampler drew with replacement, carrying its position among the epoch's draws (``draw``), so
    that DataLoader workers augment two draws of one item differently, and each the same in a resumed run."""

    def __new__(cls, index: int, draw: int):
        value = super().__new__(cls, index)
        value.draw = int(draw)
        return value

    def __reduce__(self):  # to the worker processes
        return SamplerDraw, (int(self), self.draw)


class ThermalClipDataset(Dataset):
    """One converted split as ``{"pixel_values", "labels"}`` items.

    Args:
        split: a `datasets.Dataset` made by `thermal_hf.data.convert` (columns ``frames``, ``label``, ``bbox``...).
        processor: the `ThermalVideoProcessor` whose ``clean`` / ``fit_length`` / ``normalize`` are applied.
        augmentation: an `AugmentationConfig`; applied only when ``train`` is true.
        train: training split (augment) or evaluation split (deterministic).
        seed: base seed of the augmentation random stream.

    Randomness: read in the main process (``dataloader_num_workers: 0``), the items draw one after another from
    one numpy generator seeded from ``seed`` and the process rank; a checkpoint records where that stream stood
    (`random_state`). Read by DataLoader workers, each item draws from a generator of its own, seeded from
    ``seed``, the rank, the epoch (`set_epoch`) and the item (its index, and its draw number when the sampler
    draws with replacement: `SamplerDraw`): its augmentation does not depend on which worker reads it, on how
    many workers there are, or on whether the run was resumed, so a resumed run repeats the uninterrupted one
    with no stream to restore. Either way a run is reproducible and processes do not repeat each other.
    """

    def __init__(self, split, processor, augmentation=None, train: bool = False, seed: int = 0):
        _check_split(split, processor)
        self.split = split
        self.processor = processor
        self.augmentation = augmentation if (train and augmentation is not None and augmentation.enabled) else None
        self.train = train
        self.seed = int(seed)
        self._reader = ClipReader(split)
        self._labels = np.asarray(self._reader.columns["label"], dtype=np.int64)
        # A processor with person_crop_size cuts a row labelled for one annotated person (target person:
        # object_id >= 0) around the blob in that person's box; a keyframe row (all its people) around the largest.
        columns = self._reader.columns
        self._person_rows = (np.asarray(columns["object_id"]) >= 0 if "object_id" in columns and "bbox" in columns
                             else np.zeros(len(self._labels), dtype=bool))
        # The epoch workers key their draws on: in shared memory, so that persistent workers (forked once) see
        # every later `set_epoch` too.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_() if self.augmentation is not None else None
        self._rng: np.random.Generator | None = None
        self._rng_key = None
        self._fetched = 0  # items augmented in this process's main-process reads
        self._states: dict[int, dict] = {}  # the generator's state before each of the last reads

    @property
    def labels(self) -> np.ndarray:
        """Class id of every item (int64), without reading any frames."""
        return self._labels

    @property
    def label_names(self) -> list[str]:
        return list(self.split.features["label"].names)

    def class_counts(self, num_labels: int | None = None) -> np.ndarray:
        """Items per class id (length ``num_labels``, default the ClassLabel's number of names)."""
        return np.bincount(self._labels, minlength=num_labels or len(self.label_names))

    def __len__(self) -> int:
        return len(self._labels)

    #: Read-ahead covered by `random_state` (items): far more than a DataLoader's prefetch of a batch or two.
    _KEPT_STATES = 4096

    def _generator(self) -> np.random.Generator:
        # The main process's stream. torch.initial_seed() is constant there, so the generator simply keeps going
        # across epochs; it starts afresh only if the program seeds torch again.
        key = torch.initial_seed()
        if self._rng is None or key != self._rng_key:
            self._rng = np.random.default_rng([self.seed, _process_rank(), key % (2**63), 0])
            self._rng_key = key
        return self._rng

    def set_epoch(self, epoch: int) -> None:
        """The epoch (or pass) whose augmentations DataLoader workers draw from now on (`ThermalTrainer` sets it
        before each epoch). Items read in the main process go on drawing from their one stream."""
        if self._epoch is not None:
            self._epoch[0] = int(epoch)

    def random_state(self, consumed: int) -> dict | None:
        """This process's augmentation stream as it was after its first ``consumed`` augmented items, for a
        checkpoint: the DataLoader reads ahead of training, so the generator itself is a batch or more further.
        None when nothing was augmented in this process (with DataLoader workers, whose draws are keyed on the
        epoch and the item and need no state) or that point is no longer recorded."""
        if self._rng is None:
            return None
        state = self._rng.bit_generator.state if consumed == self._fetched else self._states.get(consumed)
        return None if state is None else {"consumed": int(consumed), "state": state}

    def set_random_state(self, state: dict) -> None:
        """Continue the stream `random_state` recorded (a resumed run augments as the uninterrupted run did)."""
        self._generator().bit_generator.state = state["state"]
        self._fetched, self._states = int(state["consumed"]), {}

    def _augmentation_generator(self, index) -> np.random.Generator:
        if torch.utils.data.get_worker_info() is not None:  # a worker: this item's own draw (class docstring)
            draw = getattr(index, "draw", None)
            return np.random.default_rng([self.seed, _process_rank(), int(self._epoch[0]), int(index),
                                          0 if draw is None else int(draw) + 1])
        generator = self._generator()  # the main process: remember where each item started (see random_state)
        self._states[self._fetched] = generator.bit_generator.state
        self._states.pop(self._fetched - self._KEPT_STATES, None)
        self._fetched += 1
        return generator

    def __getitem__(self, index: int) -> dict:
        item, index = index, int(index)
        frames = self._reader.frames(index)  # a read-only view into the Arrow buffer
        # Only a window with invalid pixels is repaired (clean() copies). A clean one goes on as the view, which
        # is safe: fit_length, augment and normalize each return a new array and never write to their input.
        if has_invalid(frames, self.processor.invalid_floor):
            frames = self.processor.clean(frames)
        if getattr(self.processor, "person_crop_size", None) is not None:
            box = self._reader.columns["bbox"][index] if self._person_rows[index] else None
            frames = self.processor.crop_to_person(np.asarray(frames, dtype=np.float32), box)
        frames = self.processor.fit_length(frames)
        if self.augmentation is not None:  # no box: the model does not take one (the random stream is the same)
            frames, _ = augment(frames, None, self.augmentation, self._augmentation_generator(item))
        pixel_values = np.ascontiguousarray(self.processor.normalize(frames), dtype=np.float32)
        return {"pixel_values": torch.from_numpy(pixel_values), "labels": int(self._labels[index])}


def _check_split(split, processor) -> None:
    """Refuse what would otherwise fail on the first item or train on the wrong clips without a word."""
    from datasets import Dataset as HFDataset
    from datasets import DatasetDict

    if isinstance(split, DatasetDict):
        raise TypeError(f"ThermalClipDataset takes one split, e.g. dataset['train']; got a DatasetDict with splits "
                        f"{', '.join(split)}")
    if not isinstance(split, HFDataset):
        raise TypeError(f"ThermalClipDataset takes a datasets.Dataset made by thermal_hf.data.convert; got "
                        f"{type(split).__name__}")
    missing = [c for c in ("frames", "label") if c not in split.column_names]
    if missing:
        raise ValueError(f"ThermalClipDataset: the split has no column {' or '.join(repr(c) for c in missing)} "
                         f"(columns: {', '.join(split.column_names)}); it takes a split made by `thermal-hf convert` "
                         "(thermal_hf.data.convert.load_converted)")
    if split.format.get("type") == "custom":
        warnings.warn("ThermalClipDataset reads the frames straight from the Arrow files: the split's set_transform / "
                      "with_transform is not applied (the processor and the augmentation config are)", stacklevel=3)
    window = int(split.features["frames"].shape[0])
    wanted = int(processor.num_frames)
    if wanted > window:  # fit_length would edge-pad every clip with copies of its first and last frames
        raise ValueError(f"the processor gives num_frames={wanted} but the split's windows hold {window} frames: "
                         f"every clip would be padded with repeated frames. Set processor.num_frames = {window} (and "
                         f"the model config's num_frames), or convert the recordings with --num_frames {wanted}")


def collate_clips(batch: list[dict]) -> dict[str, torch.Tensor]:
    """``[{"pixel_values": (T, H, W), "labels": int}, ...]`` -> ``{"pixel_values": (B, T, H, W), "labels": (B,)}``."""
    clips = [item["pixel_values"] for item in batch]
    try:
        # numpy's single-threaded copy, not torch.stack: torch.stack of a batch of clips runs on torch's intra-op
        # threads, which spin when the cores are busy (training in the same process, other workers): 128 ms
        # against 1.2 ms for 16 clips of 64 x 40 x 60 on 2 busy cores, most of the data path.
        arrays = [np.asarray(clip, dtype=np.float32) for clip in clips]
        pixel_values = _shared_batch(arrays)
        if pixel_values is None:
            pixel_values = torch.from_numpy(np.stack(arrays))
        else:
            np.stack(arrays, out=pixel_values.numpy())
    except (TypeError, RuntimeError, ValueError):  # tensors numpy cannot view (on a GPU, bf16, ...): torch's way
        pixel_values = torch.stack([torch.as_tensor(clip) for clip in clips])
    return {
        "pixel_values": pixel_values,
        "labels": torch.as_tensor([int(item["labels"]) for item in batch], dtype=torch.long),
    }


def _shared_batch(arrays: list[np.ndarray]) -> torch.Tensor | None:
    """In a DataLoader worker, an empty float32 batch tensor in shared memory (else None: numpy allocates).

    A worker's batch reaches the main process through shared memory; stacking straight into it saves moving
    a private batch there afterwards (a second copy of ~10 MB, freshly page-faulted). `torch`'s default_collate
    does the same for tensors.
    """
    if torch.utils.data.get_worker_info() is None or not arrays:
        return None
    shape = (len(arrays), *arrays[0].shape)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)) * 4)
    return torch.tensor([], dtype=torch.float32).set_(storage).view(shape)


__all__ = ["ThermalClipDataset", "collate_clips"]
