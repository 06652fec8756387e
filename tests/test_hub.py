"""Model card rendering and Hub pushes, against a local fake Hub (tests/fake_hub.py) in fresh processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fake_hub import FakeHub, hub_env

from thermal_hf.errors import ThermalDataError

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "hf_fakeSecretToken1234567890"
RECIPE = "# tiny test recipe\nmodel_depth: 18\nnum_frames: 16\nsplit_by: recording\nlearning_rate: 0.001\n"


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture(scope="module")
def card_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with what training and evaluation leave beside it (and a Trainer file that must not go up)."""
    from thermal_hf.evaluate import majority_baseline
    from thermal_hf.training.metrics import compute_classification_metrics

    out = tmp_path_factory.mktemp("card") / "thermal-tiny"
    shutil.copytree(tiny_model_dir, out)
    config = json.loads((out / "config.json").read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 40)
    scores = rng.random((40, len(names))) + 2.0 * np.eye(len(names))[labels] * (rng.random(40) > 0.4)[:, None]
    metrics = compute_classification_metrics(scores, labels, len(names), names)
    metrics.update(split="validation", baseline=majority_baseline(labels, len(names), labels, names, "train"),
                   dataset={"split": "validation", "conversion_options": {"split_by": "recording", "num_frames": 16}})
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "recipe.yaml").write_text(RECIPE)
    (out / "class_distribution.json").write_text(json.dumps({names[0]: 30, names[1]: 8, names[2]: 2}))
    (out / "optimizer.pt").write_bytes(b"not for the hub")
    return out


def test_template_shipped_in_package_is_the_top_level_one():
    assert (REPO_ROOT / "model_card.md").read_text() == (REPO_ROOT / "thermal_hf" / "templates" / "model_card.md").read_text()


def test_card_is_rendered_from_real_results(card_model_dir):
    from thermal_hf.hub import render_model_card

    metrics = json.loads((card_model_dir / "metrics.json").read_text())
    card = render_model_card(card_model_dir, repo_id="org/thermal-tiny", dataset_id="org/thermal-data",
                             base_checkpoint="facebook/slowfast_r50")
    assert "{{" not in card and "}}" not in card
    meta = _front_matter(card)
    assert meta["pipeline_tag"] == "video-classification"
    assert meta["library_name"] == "transformers"
    assert meta["datasets"] == ["org/thermal-data"]
    assert meta["base_model"] == "facebook/slowfast_r50"
    assert "thermal-hf" in meta["tags"]
    results = meta["model-index"][0]["results"][0]
    values = {m["name"]: m["value"] for m in results["metrics"]}
    assert values["Top-1 accuracy"] == pytest.approx(metrics["top1_accuracy"], abs=1e-4)
    assert values["Mean class accuracy"] == pytest.approx(metrics["mean_class_accuracy"], abs=1e-4)
    assert f"| Top-1 accuracy | {100 * metrics['top1_accuracy']:.2f} % |" in card
    assert RECIPE.rstrip() in card  # verbatim
    assert "| sitting | 30 |" in card  # class distribution table
    assert "grouped by recording" in card  # split protocol from the recorded conversion options
    per_class = metrics["per_class"]["sitting"]
    assert f"| sitting | {100 * per_class['precision']:.2f} % |" in card
    assert 'pipeline("video-classification", model="org/thermal-tiny")' in card
    assert "never appear in training" in card  # imbalance note names the absent classes


def test_card_of_a_keyframe_vote_says_what_its_numbers_count(card_model_dir, tmp_path):
    from thermal_hf.hub import render_model_card

    metrics = json.loads((card_model_dir / "metrics.json").read_text())
    plain = render_model_card(card_model_dir, repo_id="org/thermal-tiny")
    assert f"split ({metrics['num_samples']} samples):" in plain
    # evaluate with the recipe's eval_target: keyframe (people's answers voted per keyframe)
    voted = tmp_path / "voted.json"
    voted.write_text(json.dumps({**metrics, "per_person": {"num_samples": metrics["num_samples"] + 22}}))
    card = render_model_card(card_model_dir, repo_id="org/thermal-tiny", metrics=voted)
    assert (f"split ({metrics['num_samples']} keyframes: the answers for their {metrics['num_samples'] + 22} "
            "annotated people voted into one per keyframe") in card


def test_card_says_how_windows_are_timed(card_model_dir, tmp_path):
    import shutil

    from thermal_hf.hub import _dataset_section, render_model_card
    from thermal_hf.models.thermal_slowfast import ThermalVideoProcessor

    assert "consecutive frames cover different durations" in render_model_card(card_model_dir, repo_id="org/t")
    model_dir = tmp_path / "timed"
    shutil.copytree(card_model_dir, model_dir)
    num_frames = ThermalVideoProcessor.from_pretrained(card_model_dir).num_frames
    ThermalVideoProcessor(num_frames=num_frames, frame_rate=1.5).save_pretrained(model_dir)
    card = render_model_card(model_dir, repo_id="org/t")
    assert "consecutive frames cover" not in card
    assert f"{num_frames} instants 0.67 s apart ({num_frames / 1.5:.1f} s)" in card
    assert "at 1.5 frames/s" in card  # the input row of the card's table
    section = _dataset_section({"dataset": {"conversion_options": {"frame_rate": 1.5}}}, None)
    assert "windows of frames resampled at 1.5 frames/s" in section and "`frame_rate=1.5`" in section
    assert "around the person" not in card
    ThermalVideoProcessor(num_frames=num_frames, person_crop_size=24).save_pretrained(model_dir)
    assert "cut to 24 x 24 pixels around the person (the largest blob 3 C warmer" in render_model_card(model_dir, repo_id="org/t")
    assert "views of the clip" not in card
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "test_time_views": 4}))
    assert "each answer is the mean of 4 views of the clip" in render_model_card(model_dir, repo_id="org/t")


def test_card_without_results_is_an_explicit_choice(tiny_model_dir):
    from thermal_hf.hub import ModelCardError, render_model_card

    with pytest.raises(ModelCardError, match="missing: metrics"):
        render_model_card(tiny_model_dir)
    card = render_model_card(tiny_model_dir, allow_incomplete=True)
    assert "**Not evaluated.**" in card and "{{" not in card
    assert "model-index" not in _front_matter(card)


def test_surviving_placeholder_fails(card_model_dir):
    from thermal_hf.hub import ModelCardError, render_model_card

    with pytest.raises(ModelCardError, match="no value"):
        render_model_card(card_model_dir, template="# {{model_name}}\n{{licence_text}}\n")


@pytest.fixture
def online(monkeypatch):
    """Point this process's huggingface_hub at a fake Hub (conftest makes tests offline; pushes go to 127.0.0.1)."""
    from huggingface_hub import constants

    def start(**kwargs) -> FakeHub:
        hub = FakeHub(**kwargs).__enter__()
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        started.append(hub)
        return hub

    started: list[FakeHub] = []
    yield start
    for hub in started:
        hub.__exit__(None, None, None)


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=180,
                          cwd=REPO_ROOT)


SCORES = """
import json, sys
import numpy as np
import thermal_hf  # noqa: F401
from transformers import pipeline
clf = pipeline("video-classification", model=sys.argv[1])
print(json.dumps(clf(np.load(sys.argv[2]), top_k=100)))
"""


def test_push_round_trip_then_load_into_pipeline(card_model_dir, tmp_path, online, capfd):
    """`thermal-hf push`, then a fresh process downloads the repo into a pipeline: same scores as the folder."""
    from transformers import pipeline

    from thermal_hf.hub import main

    hub = online()
    assert main(["--model", str(card_model_dir), "--repo_id", "org/thermal-tiny", "--token", SECRET]) == 0
    done = capfd.readouterr()
    assert "pushed model" in done.out
    files = hub.files("org/thermal-tiny")
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md", "metrics.json",
            "recipe.yaml", "class_distribution.json"} <= set(files)
    assert "optimizer.pt" not in files
    assert files["model.safetensors"] == (card_model_dir / "model.safetensors").read_bytes()
    card = files["README.md"].decode()
    assert "{{" not in card and _front_matter(card)["pipeline_tag"] == "video-classification"
    # The token was used, and never shown or written.
    assert f"Bearer {SECRET}" in hub.auth_headers
    for text in (done.out, done.err, card):
        assert SECRET not in text

    clip = np.random.default_rng(1).uniform(5, 40, (16, 40, 60)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    (tmp_path / "scores.py").write_text(SCORES)
    env = hub_env(hub, tmp_path / "hf_home")  # a fresh process, online, empty cache, no token
    loaded = _run([str(tmp_path / "scores.py"), "org/thermal-tiny", str(tmp_path / "clip.npy")], env)
    assert loaded.returncode == 0, loaded.stderr
    from_hub = {d["label"]: d["score"] for d in json.loads(loaded.stdout.strip().splitlines()[-1])}
    local = {d["label"]: d["score"] for d in pipeline("video-classification", model=str(card_model_dir))(clip, top_k=100)}
    assert from_hub.keys() == local.keys() and len(local) == 14
    for label, score in local.items():
        assert from_hub[label] == pytest.approx(score, abs=1e-6)


@pytest.mark.parametrize("refuse", [{"commit": 403}, {"create": 401}])
def test_refused_push_fails_loudly_and_commits_nothing(card_model_dir, online, capfd, refuse):
    from thermal_hf.hub import main

    hub = online(refuse=refuse)
    status = next(iter(refuse.values()))
    assert main(["--model", str(card_model_dir), "--repo_id", "org/thermal-tiny", "--token", SECRET]) == 1
    done = capfd.readouterr()
    assert f"error: push of model repo 'org/thermal-tiny' failed (HTTP {status})" in done.err
    assert "Nothing was committed" in done.err
    assert "pushed" not in done.out
    assert hub.files("org/thermal-tiny") == {}
    assert SECRET not in done.out + done.err


def test_push_without_metrics_needs_the_flag(tiny_model_dir, tmp_path):
    from thermal_hf.hub import main

    assert main(["--model", str(tiny_model_dir), "--repo_id", "org/x", "--dry_run"]) == 2
    assert main(["--model", str(tiny_model_dir), "--repo_id", "org/x", "--dry_run", "--allow_incomplete_card"]) == 0


def test_a_repo_id_the_hub_would_refuse_is_refused_in_a_dry_run_too(tiny_model_dir, converted_dataset, capsys):
    from thermal_hf.hub import main

    args = ["--model", str(tiny_model_dir), "--allow_incomplete_card", "--dry_run"]
    assert main([*args, "--repo_id", "bad repo id"]) == 2
    err = capsys.readouterr().err
    assert "--repo_id 'bad repo id' is not a Hub repo id: expected ORG/NAME" in err
    assert main([*args, "--repo_id", "org/x", "--dataset", str(converted_dataset), "--dataset_repo_id", "org//d"]) == 2
    assert "--dataset_repo_id 'org//d' is not a Hub repo id" in capsys.readouterr().err
    assert main([*args, "--repo_id", "org/x"]) == 0


def test_push_of_a_missing_model_folder_names_it(tmp_path, capsys):
    from thermal_hf.hub import main

    assert main(["--model", str(tmp_path / "nonexistent"), "--repo_id", "org/x", "--dry_run"]) == 2
    assert f"no model folder at {tmp_path / 'nonexistent'}" in capsys.readouterr().err


def test_dataset_push_and_use_by_repo_id(converted_dataset, online, monkeypatch, tmp_path):
    """What goes up is what `save_to_disk` wrote (not `datasets`' cache files, not this machine's paths); it comes
    back with `load_dataset` (the card's configs), `load_from_disk`, and as ``--dataset ORG/NAME``."""
    from datasets import load_dataset
    from huggingface_hub import constants

    from thermal_hf.data.convert import ensure_converted, load_converted, read_conversion_info
    from thermal_hf.data.location import resolve_dataset_location
    from thermal_hf.data.stats import split_class_counts
    from thermal_hf.hub import main

    local = tmp_path / "ds"
    shutil.copytree(converted_dataset, local)
    load_converted(local)["train"].map(lambda row: row)  # leaves a cache-*.arrow file in train/
    assert list((local / "train").glob("cache-*.arrow"))
    hub = online()
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    assert main(["--dataset", str(local), "--dataset_repo_id", "org/thermal-data"]) == 0
    files = hub.files("org/thermal-data", "dataset")
    written = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file() and "cache-" not in p.name}
    assert set(files) == written | {"README.md"}
    source = read_conversion_info(local)["source"]
    for name, content in files.items():
        if name.endswith(".json"):
            assert source not in content.decode(), name
    assert json.loads(files["thermal_hf_conversion.json"])["source"] == Path(source).name
    card = files["README.md"].decode()
    assert "org/thermal-data" in card and "padded_frames" in card
    assert "video-classification" in _front_matter(card)["task_categories"]

    snapshot = resolve_dataset_location("org/thermal-data")
    assert snapshot != Path("org/thermal-data") and (snapshot / "README.md").is_file()
    ours, theirs = load_converted(local), load_converted(snapshot)
    hub_rows = load_dataset(str(snapshot))  # how the Hub's viewer and load_dataset(repo_id) read the card's configs
    assert set(hub_rows) == set(ours) == set(theirs)
    for split in ours:
        assert hub_rows[split].features == ours[split].features == theirs[split].features
        np.testing.assert_array_equal(hub_rows[split].with_format("numpy")["frames"],
                                      ours[split].with_format("numpy")["frames"])
    assert ensure_converted("org/thermal-data", num_frames=16) == snapshot
    names, counts = split_class_counts("org/thermal-data")
    assert names == split_class_counts(local)[0] and counts["train"].sum() == ours["train"].num_rows
    with pytest.raises(ThermalDataError, match="Hub dataset repo 'org/absent' is not available on the Hub"):
        resolve_dataset_location("org/absent")
    with pytest.raises(ThermalDataError, match="is not available in the Hugging Face cache"):
        resolve_dataset_location("org/absent", local_files_only=True)

    # training takes the id; with synthetic_if_missing only from the cache (it never waits on the network)
    from thermal_hf.configs import DataArguments, ThermalTrainingArguments
    from thermal_hf.train import resolve_dataset

    training_args = ThermalTrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")
    for synthetic in (False, True):
        data_args = DataArguments(dataset="org/thermal-data", num_frames=16, synthetic_if_missing=synthetic)
        assert resolve_dataset(data_args, training_args) == snapshot


def test_card_from_what_training_writes(tiny_model_dir, tmp_path):
    """`thermal-hf train` leaves Trainer eval metrics, eval_report.json and its class_distribution.json format."""
    from thermal_hf.hub import render_model_card

    model_dir = tmp_path / "run"
    shutil.copytree(tiny_model_dir, model_dir)
    names = [json.loads((model_dir / "config.json").read_text())["id2label"][str(i)] for i in range(14)]
    per_class = {n: {"precision": 0.5, "recall": 0.25, "f1": 0.3333, "support": 4 if i < 2 else 0}
                 for i, n in enumerate(names)}
    (model_dir / "eval_report.json").write_text(json.dumps({
        "metrics": {"eval_accuracy": 0.625, "eval_top5_accuracy": 0.875, "eval_mean_class_accuracy": 0.3,
                    "eval_macro_f1": 0.2, "eval_loss": 1.7},
        "per_class": per_class, "confusion_matrix": [[0] * 14] * 14, "label_names": names}))
    (model_dir / "class_distribution.json").write_text(json.dumps({
        "dataset": "/data/converted", "class_names": names,
        "class_counts": {"train": {n: (20 if i == 3 else 1) for i, n in enumerate(names)},
                         "validation": {n: 1 for n in names}}}))
    (model_dir / "recipe.yaml").write_text("pretrained: slowfast_r50\nsplit_by: annotations\n")
    card = render_model_card(model_dir, metrics={"eval_accuracy": 0.625, "eval_macro_f1": 0.2, "epoch": 3.0})
    assert "| Top-1 accuracy | 62.50 % |" in card
    assert f"| {names[0]} | 50.00 % | 25.00 % |" in card  # per-class table from eval_report.json
    assert "`slowfast_r50`" in card and "memorisation" in card
    assert "| lying down-lying with risk | 20 | 1 |" in card
    assert f"| {names[2]} | 50.00 % | n/a | n/a | 0 |" in card  # absent from the split: recall undefined, not 0 %

    # From eval_report.json alone, the body and the metadata name the same evaluation set, with its size.
    report = json.loads((model_dir / "eval_report.json").read_text())
    report.update(split="held-out recordings SL14_R4, SL18_R4", num_samples=8)
    (model_dir / "eval_report.json").write_text(json.dumps(report))
    card = render_model_card(model_dir)
    assert "On the `held-out recordings SL14_R4, SL18_R4` split (8 samples)" in card
    assert _front_matter(card)["model-index"][0]["results"][0]["dataset"]["split"] == "held-out recordings SL14_R4, SL18_R4"


@pytest.mark.parametrize("content, expected", [
    (None, "cannot be read"),
    ("[1, 2]", "expected a JSON object of metrics"),
    ('{"foo": 1}', "holds none of the metrics a card reports"),
])
def test_a_bad_metrics_file_is_refused_naming_it(tiny_model_dir, tmp_path, capsys, content, expected):
    from thermal_hf.hub import main

    path = tmp_path / "metrics.json"
    if content is not None:
        path.write_text(content)
    assert main(["--model", str(tiny_model_dir), "--repo_id", "org/x", "--metrics", str(path), "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected in err


@pytest.mark.parametrize("base, hub_id", [
    ("facebook/slowfast_r50", True),
    ("./SLOWFAST_8x8_R50.pyth", False),
    ("weights/SLOWFAST_8x8_R50.pyth", False),
    ("../models/r50", False),
    ("HERE/r50-k400", False),  # an existing local folder
])
def test_only_a_hub_id_becomes_the_cards_base_model(card_model_dir, tmp_path, monkeypatch, base, hub_id):
    from thermal_hf.hub import render_model_card

    monkeypatch.chdir(tmp_path)
    if base.startswith("HERE/"):
        (tmp_path / "HERE" / "r50-k400").mkdir(parents=True)
    card = render_model_card(card_model_dir, base_checkpoint=base)
    assert f"`{base}`" in card
    assert (_front_matter(card).get("base_model") == base) is hub_id


def test_an_imported_checkpoint_is_named_in_the_card(card_model_dir, tmp_path):
    from thermal_hf.hub import render_model_card

    model_dir = tmp_path / "imported"
    shutil.copytree(card_model_dir, model_dir)
    (model_dir / "recipe.yaml").unlink()
    config = json.loads((model_dir / "config.json").read_text())
    config["base_checkpoint"] = {"file": "SLOWFAST_8x8_R50.pyth", "sha256": "1277abcdef0123456789", "format": "pytorchvideo"}
    (model_dir / "config.json").write_text(json.dumps(config))
    card = render_model_card(model_dir, allow_incomplete=True)
    assert "`SLOWFAST_8x8_R50.pyth` (pytorchvideo, sha256 1277abcdef01)" in card
    assert "{'file'" not in card and "base_model" not in _front_matter(card)


def test_metrics_of_another_model_are_refused_and_a_training_split_is_said(card_model_dir, tmp_path):
    from thermal_hf.evaluate import _sha256
    from thermal_hf.hub import ModelCardError, render_model_card

    metrics = json.loads((card_model_dir / "metrics.json").read_text())
    other = {**metrics, "model": {"path": "/elsewhere/model", "weights_sha256": "0" * 64}}
    with pytest.raises(ModelCardError, match="computed on another model .*/elsewhere/model"):
        render_model_card(card_model_dir, metrics=other)
    own = {**metrics, "model": {"weights_sha256": _sha256(card_model_dir / "model.safetensors")}}
    assert "Top-1 accuracy" in render_model_card(card_model_dir, metrics=own)
    card = render_model_card(card_model_dir, metrics={**own, "split": "train", "dataset": {"split": "train"}})
    assert "the data the model was trained on" in card and "has never seen" not in card


def _pushed_files(monkeypatch, model_dir, **card_kwargs) -> dict:
    from thermal_hf import hub

    sent = {}
    monkeypatch.setattr(hub, "_commit", lambda repo_id, files, **kwargs: sent.update(files) or "url")
    hub.push_model(model_dir, "org/x", **card_kwargs)
    return sent


def test_the_pushed_metrics_file_is_the_one_the_card_reports(card_model_dir, tmp_path, monkeypatch):
    other = tmp_path / "other_metrics.json"
    metrics = json.loads((card_model_dir / "metrics.json").read_text())
    other.write_text(json.dumps({**metrics, "top1_accuracy": 0.125}))
    (card_model_dir / "report.md").write_text("the folder's own evaluation")
    (tmp_path / "report.md").write_text("the evaluation of other_metrics.json")
    sent = _pushed_files(monkeypatch, card_model_dir, metrics=other)
    assert sent["metrics.json"] == other and "| Top-1 accuracy | 12.50 % |" in sent["README.md"].decode()
    assert sent["report.md"] == tmp_path / "report.md" and "confusion_matrix.png" not in sent
    (card_model_dir / "report.md").unlink()  # the fixture is shared by the module's tests
    sent = _pushed_files(monkeypatch, card_model_dir, metrics={"eval_accuracy": 0.25})
    assert json.loads(sent["metrics.json"]) == {"eval_accuracy": 0.25}


def test_a_stale_shard_index_beside_a_single_file_model_is_not_pushed(card_model_dir, tmp_path, monkeypatch, caplog):
    model_dir = tmp_path / "m"
    shutil.copytree(card_model_dir, model_dir)
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    with caplog.at_level("WARNING", logger="thermal_hf.hub"):
        sent = _pushed_files(monkeypatch, model_dir)
    assert "model.safetensors" in sent and "model.safetensors.index.json" not in sent
    assert "names shards that are not in the folder" in caplog.text
    (model_dir / "model.safetensors").unlink()
    from thermal_hf.errors import ThermalDataError

    with pytest.raises(ThermalDataError, match="model-00001-of-00002.safetensors"):
        _pushed_files(monkeypatch, model_dir)


@pytest.mark.slow
def test_recipe_push_to_hub_pushes_model_processor_and_card(converted_dataset, tmp_path):
    """`push_to_hub: true` in a recipe: Trainer's own pushes and our final commit (card from real results)."""
    with FakeHub() as hub:
        env = hub_env(hub, tmp_path / "hf_home")
        out = tmp_path / "trained"
        result = _run(["-m", "thermal_hf.train", str(REPO_ROOT / "tests/recipes/tiny.yaml"),
                       "--dataset", str(converted_dataset), "--output_dir", str(out), "--max_steps", "2",
                       "--save_strategy", "no", "--max_eval_samples", "8",
                       "--push_to_hub", "true", "--hub_model_id", "org/trained-tiny", "--hub_token", SECRET], env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        files = hub.files("org/trained-tiny")
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md", "recipe.yaml"} <= set(files)
    assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert "training_args.bin" not in files  # only our final commit, not Trainer's own "Model save" push
    card = files["README.md"].decode()
    assert "{{" not in card and "mean class accuracy" in card.lower()
    # The token reached the server but no file, card or log: recipe.yaml (pushed, quoted in the card) is redacted.
    assert f"Bearer {SECRET}" in hub.auth_headers
    assert "hub_token=<redacted>" in files["recipe.yaml"].decode() or "hub_token <redacted>" in files["recipe.yaml"].decode()
    for text in (result.stdout, result.stderr, card, *(v.decode(errors="ignore") for v in files.values())):
        assert SECRET not in text
