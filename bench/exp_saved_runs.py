"""Re-scores the saved models of a finished `thermal-hf benchmark` run, in ways that need no new training.

    .venv/bin/python bench/exp_saved_runs.py BENCH_DIR [--retrain-classifier] [--passes 3] [--adapt-batch-norm]
        [--detected-people]

BENCH_DIR is a finished benchmark output folder (the `FOLD/seedN/` runs its `results.json` lists, any protocol, e.g. `outputs/benchmark/thermal_native/
grouped`); each run is re-read with its own `recipe.yaml` and its fold's test recordings, scored as the benchmark
scores it (people voted into keyframes when the recipe says so) and pooled over the folds per seed:

1. **test-time views**: the 8 turns by 90 degrees and their mirrors of each clip, probabilities averaged
   (the model's ``test_time_views: 8``; only for a square ``image_size``). A ceiling view has no orientation and the
   model trained on any rotation, so the views should agree; every other score here is of the clip as given,
   whatever the saved model's views;
2. **a re-trained classifier** (`--retrain-classifier`; "cRT", Kang et al., ICLR 2020): the model's pooled features
   (the input of its last layer) of `--passes` augmented passes over the fold's training clips, standardised, and
   a logistic regression (C = 1) on them, plain and with class-balanced weights (the balanced one is
   `thermal_hf.training.classifier_retraining.fit_balanced_layer`, what the recipe key `retrain_classifier` does
   after training). If the network's features carry the rare classes and only the head's prior hides them, the
   balanced classifier finds them; and the head's and the balanced classifier's probabilities averaged.

3. **people found by the sensor** (`--detected-people`, recipes with ``person_crop_size``): the benchmark takes
   each test keyframe's people from its annotations (each annotated person answered around their own blob). A
   sensor has no annotations; it finds warm blobs (the processor's `people_clips`, at its
   ``person_threshold``) in the window's middle frame, and some are lamps or devices. Two deployable answers:
   the largest blob only (what `predict` and the pipeline answer), and every blob found answered and voted by
   the label's rule (most common answer, ties to the lowest id). A keyframe where nothing is found is answered
   around the frame's centre, as the processor does. The largest blob is also answered with 8 test-time views
   (what `predict` and the pipeline answer for a model saved with ``test_time_views: 8``).

4. **batch-norm statistics of the test recording** (`--adapt-batch-norm`; "AdaBN", Li et al., 2016): a copy of the
   model re-estimates every batch norm's mean and variance on the unlabelled clips of each test recording, then
   answers them. Rooms differ in their floor temperature, furniture and sensor height; a sensor could gather its
   own room's clips before it answers.

A diagnostic, not a recipe option: nothing here chooses anything on the test recordings.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from thermal_hf.models.thermal_slowfast import ThermalSlowFastForVideoClassification, ThermalVideoProcessor
from thermal_hf.parser import parse_recipe
from thermal_hf.train import load_data
from thermal_hf.training.callbacks import recompute_batch_norm
from thermal_hf.training.classifier_retraining import fit_balanced_layer, last_layer, pooled_features
from thermal_hf.training.data import ThermalClipDataset, collate_clips
from thermal_hf.training.keyframe_vote import keyframe_groups, vote
from thermal_hf.training.metrics import compute_classification_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exp_common import benchmark_runs  # noqa: E402  the runs a finished benchmark lists


def features_and_logits(model, processor, split, augmentation=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features, logits) of every clip of ``split``; augmented (training clips) when ``augmentation``. The
    features are `classifier_retraining.pooled_features`, what `retrain_classifier` fits on; the logits are the
    last layer applied to them (the head's output, in eval mode)."""
    clips = ThermalClipDataset(split, processor, augmentation, train=augmentation is not None, seed=seed)
    loader = torch.utils.data.DataLoader(clips, batch_size=64, collate_fn=collate_clips)
    features, _ = pooled_features(model, loader, progress=False)
    layer = last_layer(model)
    logits = features @ layer.weight.detach().double().numpy().T + layer.bias.detach().double().numpy()
    return features, logits


@contextmanager
def views(model, count: int):
    """``model`` answering with ``count`` test-time views (`set_test_time_views`) inside the block."""
    saved = model.config.test_time_views
    model.set_test_time_views(count)
    try:
        yield model
    finally:
        model.set_test_time_views(saved)


def evaluation_batch(split, processor) -> torch.Tensor:
    """Every clip of ``split`` as the benchmark evaluates it (ThermalClipDataset, no augmentation), one batch."""
    clips = ThermalClipDataset(split, processor)
    return torch.stack([clips[i]["pixel_values"] for i in range(len(clips))])


def dihedral_probabilities(model, processor, split) -> np.ndarray:
    """Softmax averaged over the 8 turns and mirrors of each clip (the model's own ``test_time_views: 8``)."""
    batch = evaluation_batch(split, processor)
    with views(model, 8), torch.no_grad():
        return torch.softmax(model(batch).logits, -1).numpy()


def adapted_batch_norm_logits(model, processor, split) -> np.ndarray:
    """Logits of every clip of ``split`` from a copy of ``model`` whose batch-norm statistics were re-estimated on
    the clips of the clip's own recording ("AdaBN", Li et al., 2016): a sensor in a new room sees that room's
    unlabelled clips before it answers. Only the statistics change (no label, no weight is learnt); each recording
    starts from reset statistics, averaged over all of its clips (momentum None)."""
    batch = evaluation_batch(split, processor)
    recordings = np.asarray(split["recording"])
    logits = np.zeros((len(batch), model.config.num_labels))
    for recording in np.unique(recordings):
        rows = np.flatnonzero(recordings == recording)
        adapted = copy.deepcopy(model).eval()
        # weight_averaging's pass: reset statistics, then their plain mean over the batches (training mode)
        recompute_batch_norm(adapted, [{"pixel_values": batch[rows[start:start + 64]]}
                                       for start in range(0, len(rows), 64)])
        with torch.no_grad():
            logits[rows] = adapted(batch[rows]).logits.double().numpy()
    return logits


def detected_people_scores(model, processor, split, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(largest blob scores (G, K), every blob voted (G, K), blobs found per keyframe)`` for the keyframes
    ``groups`` numbers: each keyframe's window (its first person row: every person row of a keyframe holds the same
    frames) answered around the blobs the processor's own detector finds, with no annotation."""
    from thermal_hf.data.convert import ClipReader

    reader = ClipReader(split)
    first_rows = np.unique(groups, return_index=True)[1]
    largest, voted, found = [], [], []
    for row in first_rows:
        clips = processor.people_clips(reader.frames(int(row)))
        with torch.no_grad():
            logits = model(torch.from_numpy(clips)).logits.double().numpy()
        largest.append(logits[0])  # person_blobs: largest first
        voted.append(vote(logits, np.zeros(len(logits), dtype=np.int64), np.zeros(len(logits), dtype=np.int64))[0][0])
        found.append(len(clips))
    return np.asarray(largest), np.asarray(voted), found


def retrained_classifier_scores(model, processor, data, augmentation, passes: int, balanced: bool) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    # The augmented passes draw from a stream keyed on torch's seed (ThermalClipDataset), which is random in a fresh
    # process: seeded here, a re-run gives the same classifier.
    torch.manual_seed(0)
    train_x = np.concatenate([features_and_logits(model, processor, data.train, augmentation, seed=100 + p)[0]
                              for p in range(passes)])
    train_y = np.tile(np.asarray(data.train["label"]), passes)
    test_x, _ = features_and_logits(model, processor, data.eval)
    if balanced:  # exactly what the recipe key `retrain_classifier` folds into the model
        weight, bias = fit_balanced_layer(train_x, train_y, len(data.label_names))
        return test_x @ weight.T + bias
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    classifier = LogisticRegression(C=1.0, max_iter=3000).fit((train_x - mean) / std, train_y)
    scores = np.full((len(test_x), len(data.label_names)), -1e9)  # classes absent from training: never answered
    scores[:, classifier.classes_] = classifier.predict_log_proba((test_x - mean) / std)
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="a `thermal-hf benchmark` output folder (FOLD/seedN/ runs)")
    parser.add_argument("--retrain-classifier", action="store_true")
    parser.add_argument("--passes", type=int, default=3, help="augmented passes over the training clips (default 3)")
    parser.add_argument("--adapt-batch-norm", action="store_true",
                        help="also answer with batch-norm statistics re-estimated on each test recording's clips")
    parser.add_argument("--detected-people", action="store_true",
                        help="also answer each keyframe from the blobs the sensor finds (no annotations)")
    args = parser.parse_args(argv)
    listed = benchmark_runs(args.runs)  # the runs its results.json pooled, not every seed* folder left there
    torch.set_num_threads(2)
    pooled: dict[tuple[str, str], list] = {}
    for fold_name, runs in listed.items():
        fold = args.runs / fold_name
        # The split the benchmark trained the fold on (thermal_hf.benchmark: the "given" fold keeps the annotation
        # files' own train / val split; any other fold holds out the recordings its name joins with "+").
        held_out = [] if fold.name == "given" else ["--eval_recordings", *fold.name.split("+")]
        parsed = parse_recipe([str(runs[0] / "recipe.yaml"), "--output_dir", tempfile.mkdtemp(), "--report_to", "none",
                               "--split_by", "annotations", *held_out])
        data_args = parsed.data_args
        data = load_data(data_args, parsed.training_args)
        labels = np.asarray(data.eval["label"])
        groups = (keyframe_groups(data.eval["recording"], data.eval["image_id"]) if data_args.votes_keyframes
                  else np.arange(len(labels)))
        for run in runs:
            model = ThermalSlowFastForVideoClassification.from_pretrained(run).eval()
            processor = ThermalVideoProcessor.from_pretrained(run)
            # 8 views turn the clip by 90 degrees, which a model with a non-square image_size refuses: skipped there
            turns = model.config.image_size[0] == model.config.image_size[1]
            variants = {"classification head": features_and_logits(model, processor, data.eval)[1]}
            if turns:
                variants["8 test-time views"] = np.log(dihedral_probabilities(model, processor, data.eval) + 1e-12)
            if args.adapt_batch_norm:
                variants["batch norm of the test recording"] = adapted_batch_norm_logits(model, processor, data.eval)
            if args.retrain_classifier:
                for balanced in (False, True):
                    name = f"re-trained classifier{', balanced' if balanced else ''}"
                    variants[name] = retrained_classifier_scores(model, processor, data, data_args.augmentation_config(),
                                                                 args.passes, balanced)
                # The head and the balanced classifier, probabilities averaged (no weight tuned): does half of each
                # keep the head's common classes and some of the rare ones the balanced classifier finds?
                both = [torch.from_numpy(variants[k]).float().softmax(-1)
                        for k in ("classification head", "re-trained classifier, balanced")]
                variants["head + balanced classifier, averaged"] = np.log((0.5 * (both[0] + both[1])).numpy() + 1e-12)
            for name, scores in variants.items():
                pooled.setdefault((name, run.name), []).append(vote(scores, labels, groups)[:2])
            if args.detected_people:
                if processor.person_crop_size is None:
                    parser.error(f"{run}: --detected-people needs a recipe with person_crop_size")
                keyframe_labels = vote(variants["classification head"], labels, groups)[1]
                with views(model, 1):
                    largest, voted, found = detected_people_scores(model, processor, data.eval, groups)
                if turns:
                    with views(model, 8):
                        largest8 = detected_people_scores(model, processor, data.eval, groups)[0]
                    pooled.setdefault(("largest blob found, 8 views", run.name), []).append((largest8, keyframe_labels))
                people = np.bincount(groups)
                print(f"  {fold.name}/{run.name}: {sum(found)} blobs found in {len(found)} keyframes for their "
                      f"{people.sum()} annotated people (as many in {np.sum(np.asarray(found) == people)} keyframes)")
                pooled.setdefault(("largest blob found", run.name), []).append((largest, keyframe_labels))
                pooled.setdefault(("every blob found, voted", run.name), []).append((voted, keyframe_labels))
            print(f"  {fold.name}/{run.name} done", flush=True)
    names = data.label_names
    print(f"{args.runs}: mean class accuracy / top-1 (%), pooled over {len(listed)} fold(s), per seed")
    for (variant, seed), parts in sorted(pooled.items()):
        scores, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        metrics = compute_classification_metrics(scores, labels, len(names), names)
        recalls = ", ".join(f"{n} {v['recall']:.0%}" for n, v in metrics["per_class"].items()
                            if v["support"] > 0 and n not in ("standing", "lying down-lying with risk"))
        print(f"{variant:34s} {seed}: {100 * metrics['mean_class_accuracy']:5.1f} / {100 * metrics['top1_accuracy']:5.1f}"
              f"  | {recalls}")


if __name__ == "__main__":
    main()
