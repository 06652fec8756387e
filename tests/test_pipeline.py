"""`pipeline("video-classification")` and the thermal pipeline: every input form gives the model's scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_NUM_FRAMES, make_tiny_model

import thermal_hf  # noqa: F401  registers model, processor and the thermal task
from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor
from thermal_hf.pipelines import THERMAL_TASK, ThermalVideoClassificationPipeline

T = TINY_NUM_FRAMES
START = 10


@pytest.fixture(scope="module")
def spread_model(tmp_path_factory):
    """A tiny model whose head gives clearly different scores (the default init is nearly uniform), saved."""
    torch.manual_seed(3)
    model = make_tiny_model(head_init_std=0.5).eval()
    processor = ThermalVideoProcessor(num_frames=T)
    out = tmp_path_factory.mktemp("spread") / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return model, processor, out


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """40 frames with dead (-273.2) pixels and a whole dead frame inside the window used below."""
    rng = np.random.default_rng(0)
    frames = rng.normal(17.0, 1.0, (40, 40, 60)).astype(np.float32)
    frames[:, 15:25, 20:30] += 15.0  # a warm person
    frames[START + 3, :5, :] = -273.2
    frames[START + 7] = -273.2
    path = tmp_path_factory.mktemp("rec") / "SY99_R1.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames, chunks=(8, 40, 60), compression="gzip")
        f.create_dataset("timestamps", data=1_700_000_000_000 + 100 * np.arange(40, dtype=np.int64))
    return path


def _scores(result) -> dict[str, float]:
    return {d["label"]: d["score"] for d in result}


def _assert_same(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=tol), key


def _reference(model, processor, clip) -> dict[str, float]:
    with torch.no_grad():
        logits = model(**processor(clip, return_tensors="pt")).logits[0]
    probs = logits.softmax(-1).tolist()
    return {model.config.id2label[i]: p for i, p in enumerate(probs)}


def test_numpy_tensor_list_and_h5_give_the_same_scores(spread_model, recording):
    from transformers import pipeline

    model, processor, path = spread_model
    with h5py.File(recording) as f:
        clip = f["frames"][START : START + T]
    expected = _reference(model, processor, clip)
    assert max(expected.values()) - min(expected.values()) > 0.05  # a meaningful comparison

    stock = pipeline("video-classification", model=str(path))
    assert type(stock).__name__ == "VideoClassificationPipeline"
    _assert_same(_scores(stock(clip, top_k=14)), expected)
    _assert_same(_scores(stock(torch.from_numpy(clip), top_k=14)), expected)
    as_list = stock([clip, clip[::-1].copy()], top_k=14)
    assert len(as_list) == 2
    _assert_same(_scores(as_list[0]), expected)
    _assert_same(_scores(as_list[1]), _reference(model, processor, clip[::-1].copy()))

    thermal = pipeline(THERMAL_TASK, model=str(path))
    assert isinstance(thermal, ThermalVideoClassificationPipeline)
    _assert_same(_scores(thermal(str(recording), start_frame=START, top_k=14)), expected)
    _assert_same(_scores(thermal(recording, keyframe_index=START + T // 2, top_k=14)), expected)
    _assert_same(_scores(thermal(clip, top_k=14)), expected)

    # default top_k = 5, sorted, softmax
    top = stock(clip)
    assert [d["label"] for d in top] == sorted(expected, key=expected.get, reverse=True)[:5]


def test_thermal_pipeline_via_pipeline_class_and_builtin_task_untouched(spread_model, recording):
    from transformers import pipeline
    from transformers.pipelines import PIPELINE_REGISTRY
    from transformers.pipelines.video_classification import VideoClassificationPipeline

    _, _, path = spread_model
    impl = PIPELINE_REGISTRY.supported_tasks["video-classification"]["impl"]
    assert impl in (VideoClassificationPipeline, "transformers.pipelines.video_classification.VideoClassificationPipeline")
    clf = pipeline("video-classification", model=str(path), pipeline_class=ThermalVideoClassificationPipeline)
    assert isinstance(clf, ThermalVideoClassificationPipeline)
    assert len(clf(str(recording), keyframe_index=0, top_k=3)) == 3  # edge window: padded, still answers
    with pytest.raises(ValueError, match="list of"):
        clf(np.zeros((2, T, 40, 60), np.float32))
    with pytest.raises(ValueError, match="not both"):
        clf(str(recording), start_frame=0, keyframe_index=8)
    # the processor's settings for one call: the answer is the processor's with that setting, and only that call's
    clip = np.random.default_rng(0).normal(25.0, 3.0, (T, 40, 60)).astype(np.float32)
    wide = clf(clip, top_k=100, temperature_range=(0, 50))
    by_hand = clf.model(**clf.video_processor(clip, return_tensors="pt", temperature_range=(0, 50))).logits
    probs = by_hand.softmax(-1)[0]
    assert wide[0]["label"] == clf.model.config.id2label[int(probs.argmax())]
    assert wide[0]["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert list(clf.video_processor.temperature_range or []) != [0, 50]  # the processor's own setting is kept
    with pytest.raises(TypeError, match="unknown pipeline argument.*temperature_range"):
        clf(clip, temprature_range=(0, 50))


FRESH = """
import json, sys
import numpy as np
import thermal_hf  # noqa: F401
from transformers import pipeline
clip = np.load(sys.argv[1])
out = {}
for folder in sys.argv[2:]:
    out[folder] = pipeline("video-classification", model=folder)(clip, top_k=100)
print(json.dumps(out))
"""


@pytest.mark.slow
def test_fresh_process_scores_match_in_memory(spread_model, tmp_path):
    """save_pretrained folder and a Trainer checkpoint folder, loaded by a fresh process, give in-memory scores."""
    from transformers import Trainer, TrainingArguments, pipeline

    model, processor, path = spread_model
    clip = np.random.default_rng(5).uniform(10, 40, (T, 40, 60)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"pixel_values": torch.rand(T, 40, 60), "labels": 3}

    torch.manual_seed(0)
    trained = make_tiny_model(head_init_std=0.5)
    args = TrainingArguments(str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=1, save_strategy="steps",
                             save_steps=1, use_cpu=True, report_to="none", logging_strategy="no",
                             disable_tqdm=True)
    Trainer(model=trained, args=args, train_dataset=Clips(), processing_class=processor).train()
    checkpoint = tmp_path / "run" / "checkpoint-1"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "video_preprocessor_config.json").is_file()

    (tmp_path / "fresh.py").write_text(FRESH)
    done = subprocess.run([sys.executable, str(tmp_path / "fresh.py"), str(tmp_path / "clip.npy"), str(path),
                           str(checkpoint)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout.strip().splitlines()[-1])
    in_memory = pipeline("video-classification", model=model, video_processor=processor)
    _assert_same(_scores(fresh[str(path)]), _scores(in_memory(clip, top_k=100)))
    trained.eval()
    _assert_same(_scores(fresh[str(checkpoint)]), _reference(trained, processor, clip))


def test_thermal_pipeline_batches_saves_its_processor_and_takes_one_position_per_input(spread_model, recording,
                                                                                      tmp_path):
    from transformers import pipeline

    model, processor, path = spread_model
    thermal = pipeline(THERMAL_TASK, model=str(path))
    rng = np.random.default_rng(2)
    clips = [rng.uniform(10, 40, (T, 40, 60)).astype(np.float32) for _ in range(3)]
    one_by_one = thermal(clips, top_k=14)
    batched = thermal(clips, top_k=14, batch_size=2)
    assert len(batched) == 3
    for alone, together, clip in zip(one_by_one, batched, clips):
        _assert_same(_scores(together), _scores(alone), tol=1e-5)
        _assert_same(_scores(alone), _reference(model, processor, clip))

    positions = thermal([str(recording), recording], keyframe_index=[START + T // 2, 30], top_k=14)
    _assert_same(_scores(positions[0]), _scores(thermal(recording, keyframe_index=START + T // 2, top_k=14)))
    _assert_same(_scores(positions[1]), _scores(thermal(recording, keyframe_index=30, top_k=14)))
    with pytest.raises(ValueError, match="one position per input"):
        thermal([recording, recording], keyframe_index=[3])
    with pytest.raises(ValueError, match="goes with a list of inputs"):
        thermal(recording, keyframe_index=[3])
    small = rng.uniform(10, 40, (T, 24, 32)).astype(np.float32)
    assert len(thermal([clips[0], small], top_k=2)) == 2  # one at a time: any sizes
    with pytest.raises(ValueError, match="one frame size"):
        thermal([clips[0], small], batch_size=2)
    read = []

    def stream():  # a generator is read as it goes, batched or not
        for clip in clips * 3:
            read.append(1)
            yield clip

    answers = iter(thermal(stream(), batch_size=2, top_k=14))
    _assert_same(_scores(next(answers)), _scores(one_by_one[0]), tol=1e-5)
    assert len(read) < 9 and len(list(answers)) == 8
    with pytest.raises(TypeError, match="integer frame index"):
        thermal(recording, keyframe_index=10.7)

    thermal.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "video_preprocessor_config.json").is_file()
    assert "custom_pipelines" not in json.loads((tmp_path / "saved" / "config.json").read_text())  # no remote code
    again = pipeline(THERMAL_TASK, model=str(tmp_path / "saved"))
    _assert_same(_scores(again(clips[0], top_k=14)), _scores(one_by_one[0]))


def test_channel_axis_clips_are_refused_by_both_pipelines(spread_model):
    from transformers import pipeline

    _, _, path = spread_model
    clip = np.random.default_rng(4).uniform(10, 40, (T, 40, 60)).astype(np.float32)
    for task in ("video-classification", THERMAL_TASK):
        with pytest.raises(ValueError, match="colour channel"):
            pipeline(task, model=str(path))(np.repeat(clip[..., None], 3, -1))


def test_a_num_frames_the_model_cannot_take_is_refused_before_reading(spread_model, tmp_path):
    from transformers import pipeline

    _, _, out = spread_model
    thermal = pipeline(THERMAL_TASK, model=str(out))
    with pytest.raises(ValueError, match=r"num_frames=7: must be divisible by slow_temporal_stride \(8\) and fast_temporal_stride \(2\); this model was trained on"):
        thermal(str(tmp_path / "not_read.h5"), num_frames=7)  # refused before the (missing) file is opened
