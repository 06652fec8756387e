"""Using the pieces from Python, as the README's library section does: what must work, and what must be refused
with a message instead of a crash deep inside or a quiet wrong result."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import TINY_NUM_FRAMES, make_tiny_model
from transformers import TrainingArguments

from thermal_hf.configs import ThermalTrainingArguments
from thermal_hf.data.convert import ClipReader, load_converted
from thermal_hf.errors import ThermalDataError
from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
from thermal_hf.training.data import ThermalClipDataset, collate_clips
from thermal_hf.training.trainer import ThermalTrainer


def test_trainer_takes_plain_training_arguments_with_thermal_defaults(converted_dataset, tmp_path):
    split = load_converted(converted_dataset)["train"].select(range(4))
    clips = ThermalClipDataset(split, ThermalVideoProcessor(num_frames=TINY_NUM_FRAMES))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2,
                             learning_rate=0.01, report_to="none", use_cpu=True, save_strategy="no",
                             disable_tqdm=True)
    model = make_tiny_model()
    trainer = ThermalTrainer(model, args, train_dataset=clips, data_collator=collate_clips)
    assert isinstance(trainer.args, ThermalTrainingArguments)
    assert (trainer.args.output_dir, trainer.args.max_steps, trainer.args.learning_rate) == (str(tmp_path / "out"), 1, 0.01)
    assert trainer.args.loss == ThermalTrainingArguments.loss  # thermal keys at their defaults
    before = [p.detach().clone() for p in model.parameters()]
    assert np.isfinite(trainer.train().training_loss)
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    keyword = ThermalTrainer(model=model, args=args, train_dataset=clips, data_collator=collate_clips)
    assert isinstance(keyword.args, ThermalTrainingArguments)
    with pytest.raises(TypeError, match="args must be TrainingArguments"):
        ThermalTrainer(model=model, args={"output_dir": "x"}, train_dataset=clips)


def test_clip_dataset_refuses_what_it_cannot_read_and_padding_every_clip(converted_dataset):
    dataset = load_converted(converted_dataset)
    processor = ThermalVideoProcessor(num_frames=TINY_NUM_FRAMES)
    with pytest.raises(TypeError, match=r"one split, e.g. dataset\['train'\].*train, validation"):
        ThermalClipDataset(dataset, processor)
    with pytest.raises(ValueError, match="no column 'label'"):
        ThermalClipDataset(dataset["train"].remove_columns("label"), processor)
    # the default processor (64 frames) on 16-frame windows would edge-pad every clip with copies
    with pytest.raises(ValueError, match=f"num_frames=64 but the split's windows hold {TINY_NUM_FRAMES} frames"):
        ThermalClipDataset(dataset["train"], ThermalVideoProcessor())
    assert len(ThermalClipDataset(dataset["train"], ThermalVideoProcessor(num_frames=8))) == dataset["train"].num_rows
    shown = dataset["train"].with_transform(lambda batch: batch)
    with pytest.warns(UserWarning, match="set_transform / with_transform is not applied"):
        ThermalClipDataset(shown, processor)


@pytest.mark.parametrize("rows", [None, [5, 0, 3]])
def test_pickled_clip_dataset_holds_no_frames_and_reads_the_same(converted_dataset, rows):
    """DataLoader workers under spawn pickle the dataset: the frames stay in the memory-mapped files."""
    split = load_converted(converted_dataset)["train"]
    if rows is not None:
        split = split.select(rows)
    clips = ThermalClipDataset(split, ThermalVideoProcessor(num_frames=TINY_NUM_FRAMES))
    frame_bytes = split.num_rows * int(np.prod(split.features["frames"].shape)) * 4
    payload = pickle.dumps(clips)
    assert len(payload) < frame_bytes / 4
    copy = pickle.loads(payload)
    assert isinstance(copy._reader, ClipReader)
    for i in range(len(clips)):
        np.testing.assert_array_equal(copy[i]["pixel_values"].numpy(), clips[i]["pixel_values"].numpy())


def test_processor_counts_are_whole_numbers_and_start_frames_match_the_videos(synthetic_root):
    assert ThermalVideoProcessor(num_frames=16.0).num_frames == 16
    for bad in (16.7, True, "x"):
        with pytest.raises(TypeError, match="num_frames must be a whole number"):
            ThermalVideoProcessor(num_frames=bad)
    with pytest.raises(TypeError, match="person_crop_size must be a whole number"):
        ThermalVideoProcessor(person_crop_size=20.5)
    processor = ThermalVideoProcessor(num_frames=8)
    clip = np.random.default_rng(0).uniform(18, 30, (8, 40, 60)).astype(np.float32)
    with pytest.raises(TypeError, match="num_frames must be a whole number"):
        processor(clip, num_frames=4.5)
    # a clip as nested Python lists is the same clip
    np.testing.assert_array_equal(processor(clip.tolist())["pixel_values"], processor(clip)["pixel_values"])
    recordings = sorted((synthetic_root / "frames").glob("*.h5"))[:2]
    assert processor(recordings, start_frame=[0, 5])["pixel_values"].shape == (2, 8, 40, 60)
    for starts in ([0], [0, 1, 2]):
        with pytest.raises(ValueError, match=f"start_frame has {len(starts)} value\\(s\\) for 2 video"):
            processor(recordings, start_frame=starts)
    with pytest.raises(ValueError, match="video 1 of the list is an array"):
        processor([recordings[0], clip], start_frame=[0, 3])
    assert processor([recordings[0], clip], start_frame=[0, None])["pixel_values"].shape == (2, 8, 40, 60)


def test_load_converted_says_what_the_folder_is(converted_dataset, synthetic_root, tmp_path):
    with pytest.raises(ThermalDataError, match="folder not found"):
        load_converted(tmp_path / "absent")
    with pytest.raises(ThermalDataError, match=r"is one split of the converted dataset .*\['train'\]"):
        load_converted(converted_dataset / "train")
    with pytest.raises(ThermalDataError, match="is a raw dataset .*convert it first"):
        load_converted(synthetic_root)


def test_persistent_workers_without_workers_are_switched_off(tmp_path):
    args = ThermalTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                    dataloader_persistent_workers=True, dataloader_num_workers=0)
    assert args.dataloader_persistent_workers is False
    kept = ThermalTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                    dataloader_persistent_workers=True, dataloader_num_workers=2)
    assert kept.dataloader_persistent_workers is True
