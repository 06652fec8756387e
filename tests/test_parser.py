"""Recipe parsing: precedence default < YAML < command line, every override type, unknown keys, env:."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from thermal_hf.configs import DataArguments, ModelArguments, ThermalTrainingArguments
from thermal_hf.errors import RecipeError
from thermal_hf.parser import dump_recipe, load_recipe, parse_recipe

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """
model_depth: 18
image_size: [64, 96]
dataset: /data/raw
num_frames: 16
learning_rate: 5e-3          # a string for YAML 1.1: must still become a float
num_train_epochs: 3
bf16: false
callbacks: [early_stopping]
eval_strategy: epoch
early_stopping_patience: 4
use_cpu: true
report_to: none
"""


def with_lines(text: str, extra: str) -> str:
    """`text` with the YAML lines of `extra` in place of its own lines for the same keys (a key set twice is an error)."""
    keys = {line.split(":")[0] for line in extra.splitlines() if line.strip()}
    kept = [line for line in text.splitlines() if line.split(":")[0] not in keys]
    return "\n".join(kept) + "\n" + extra


def parse(tmp_path, *cli, text=BASE):
    return parse_recipe([str(write(tmp_path, text)), "--output_dir", str(tmp_path / "out"), *cli])


def test_defaults_then_yaml(tmp_path):
    model, data, train = parse(tmp_path).as_tuple()
    assert model.model_depth == 18 and model.image_size == (64, 96)
    assert data.dataset == "/data/raw" and data.num_frames == 16
    assert train.learning_rate == pytest.approx(0.005) and isinstance(train.learning_rate, float)
    assert train.num_train_epochs == 3
    assert train.callbacks == ["early_stopping"] and train.early_stopping_patience == 4
    # untouched keys keep the dataclass defaults (ours and TrainingArguments')
    assert train.backbone_lr_multiplier == 0.1
    assert train.metric_for_best_model == "mean_class_accuracy" and train.greater_is_better is True
    assert train.lr_scheduler_type.value == "cosine"
    assert data.sampling == "natural" and train.weight_decay == 0.0


def test_command_line_overrides_every_type(tmp_path):
    model, data, train = parse(
        tmp_path,
        "--num_train_epochs", "7",                    # float field given an int
        "--per_device_train_batch_size", "2",          # int
        "--learning_rate", "0.01",                     # float
        "--bf16", "false",                             # bool with a value
        "--load_best_model_at_end",                    # bool without a value
        "--save_strategy", "epoch",
        "--callbacks", "early_stopping",               # list
        "--image_size", "128", "192",                  # tuple (declared as a list)
        "--random_resized_crop_scale", "0.7", "1.0",   # optional float pair
        "--dataset", "/elsewhere",                     # string
        "--dropout", "0.5",                            # optional float
        "--report_to", "tensorboard",
    ).as_tuple()
    assert train.num_train_epochs == 7 and train.per_device_train_batch_size == 2
    assert train.learning_rate == pytest.approx(0.01)
    assert train.bf16 is False and train.load_best_model_at_end is True
    assert train.callbacks == ["early_stopping"]
    assert model.image_size == (128, 192) and model.dropout == 0.5
    assert data.random_resized_crop_scale == (0.7, 1.0)
    assert data.augmentation_config().random_resized_crop_scale == (0.7, 1.0)
    assert data.dataset == "/elsewhere"
    assert train.report_to == ["tensorboard"]


def test_command_line_null_switches_off_an_optional_key(tmp_path):
    text = BASE + "frame_rate: 1.5\nmax_train_samples: 100\n"
    _, data, _ = parse(tmp_path, text=text).as_tuple()
    assert (data.frame_rate, data.max_train_samples) == (1.5, 100)
    _, data, _ = parse(tmp_path, "--frame_rate", "null", "--max_train_samples", "None", text=text).as_tuple()
    assert (data.frame_rate, data.max_train_samples) == (None, None)
    _, data, _ = parse(tmp_path, "--frame_rate", "6", text=text).as_tuple()
    assert data.frame_rate == 6.0
    with pytest.raises(RecipeError, match="frame_rate.*invalid float value: 'fast'"):
        parse(tmp_path, "--frame_rate", "fast", text=text)
    with pytest.raises(RecipeError, match="num_frames.*invalid int value"):  # not optional: no null
        parse(tmp_path, "--num_frames", "null")
    # Optional lists, and optional keys whose default is not None, switch off the same way.
    text = BASE + "random_resized_crop_scale: [0.6, 1.0]\nmetric_for_best_model: macro_f1\n"
    _, data, train = parse(tmp_path, "--random_resized_crop_scale", "null", "--metric_for_best_model", "none",
                           text=text).as_tuple()
    assert data.random_resized_crop_scale is None and train.metric_for_best_model is None
    _, data, _ = parse(tmp_path, "--random_resized_crop_scale", "0.5", "1", text=text).as_tuple()
    assert data.random_resized_crop_scale == (0.5, 1.0)
    with pytest.raises(RecipeError, match="give it alone"):
        parse(tmp_path, "--random_resized_crop_scale", "0.5", "null", text=text)


def test_bool_true_and_no_flag(tmp_path):
    parsed = parse(tmp_path, "--do_eval", "false", "--eval_strategy", "no", "--callbacks", "none", "--skip_invalid", "true")
    assert parsed.training_args.do_eval is False and parsed.data_args.skip_invalid is True
    assert parsed.training_args.callbacks == []  # `--callbacks none` clears the recipe's list
    assert parse(tmp_path, "--no_do_train").training_args.do_train is False


def test_recipe_copy_records_overrides(tmp_path):
    import yaml

    parsed = parse(tmp_path, "--image_size", "128", "192", "--learning_rate", "0.02")
    path = dump_recipe(parsed, tmp_path / "copy.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["image_size"] == [128, 192] and data["learning_rate"] == 0.02
    assert data["model_depth"] == 18 and data["eval_strategy"] == "epoch"
    # the copy is itself a valid recipe giving the same values
    again = parse_recipe([str(path), "--output_dir", str(tmp_path / "o2")])
    assert again.model_args.image_size == (128, 192) and again.training_args.learning_rate == 0.02
    # `mixed_precision: auto` is recorded as asked: the copy decides again on the machine that runs it
    parsed = parse(tmp_path, "--mixed_precision", "auto")
    assert parsed.training_args.mixed_precision in ("no", "bf16", "fp16")  # resolved for this machine
    assert yaml.safe_load(dump_recipe(parsed, tmp_path / "auto.yaml").read_text())["mixed_precision"] == "auto"


@pytest.mark.parametrize(
    ("text", "cli", "bad", "hint"),
    [
        (BASE + "lerning_rate: 0.1\n", [], "lerning_rate", "learning_rate"),
        (BASE + "imagesize: [1, 2]\n", [], "imagesize", "image_size"),
        (BASE, ["--learning_rat", "0.1"], "learning_rat", "learning_rate"),  # no argparse abbreviation
        (BASE, ["--backbone_lr_multiplyer=0.2"], "backbone_lr_multiplyer", "backbone_lr_multiplier"),
    ],
)
def test_unknown_key_is_named_with_suggestion(tmp_path, text, cli, bad, hint):
    with pytest.raises(RecipeError) as err:
        parse(tmp_path, *cli, text=text)
    assert bad in str(err.value) and f"Did you mean: {hint}" in str(err.value)


def test_bad_values(tmp_path):
    with pytest.raises(RecipeError, match="learning_rate"):
        parse(tmp_path, "--learning_rate", "fast")
    with pytest.raises(RecipeError, match="class_weighting"):
        parse(tmp_path, "--class_weighting", "inverse")
    with pytest.raises(RecipeError, match="early_stoping"):
        parse(tmp_path, "--callbacks", "early_stoping")
    with pytest.raises(RecipeError, match="image_size"):
        parse(tmp_path, "--image_size", "1", "2", "3")
    with pytest.raises(RecipeError, match="nested"):
        parse(tmp_path, text=BASE + "model:\n  depth: 18\n")
    with pytest.raises(RecipeError, match="exclusive"):
        parse(tmp_path, "--warmup_epochs", "2", "--warmup_steps", "10")
    with pytest.raises(RecipeError, match="'test_time_views': expected one of 1, 2, 4, 8; got 3"):
        parse(tmp_path, "--test_time_views", "3")
    # A typo here used to fail only after the first evaluation, epochs into the run.
    with pytest.raises(RecipeError, match="'metric_for_best_model': expected one of loss, accuracy.*got 'eval_mca'"):
        parse(tmp_path, "--metric_for_best_model", "eval_mca")
    assert parse(tmp_path, "--metric_for_best_model", "eval_coarse_macro_f1").training_args.metric_for_best_model
    with pytest.raises(RecipeError, match="'max_train_samples': expected a positive number"):
        parse(tmp_path, "--max_train_samples", "0")
    with pytest.raises(RecipeError, match="'mixup_alpha': expected >= 0"):
        parse(tmp_path, "--mixup_alpha", "-1")


def test_a_key_set_twice_in_the_yaml_is_refused(tmp_path):
    import yaml

    from thermal_hf.parser import _unique_key_loader

    with pytest.raises(RecipeError, match="key 'learning_rate' is set twice \\(lines 2 and 4\\)"):
        parse(tmp_path, text="model_depth: 18\nlearning_rate: 0.002\nnum_frames: 16\nlearning_rate: 0.1\n")
    # YAML's own merge key is not a key set twice, and still merges
    text = "base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  b: 3\n"
    assert yaml.load(text, Loader=_unique_key_loader()) == yaml.safe_load(text)


def test_test_time_views_reach_the_model_config(tmp_path):
    from thermal_hf.configs import TEST_TIME_VIEWS
    from thermal_hf.models.thermal_slowfast import configuration_thermal_slowfast as configuration

    assert TEST_TIME_VIEWS == configuration.TEST_TIME_VIEWS  # the recipe check mirrors the model's
    model_args = parse(tmp_path, "--test_time_views", "8").as_tuple()[0]
    assert model_args.config_overrides()["test_time_views"] == 8
    assert "test_time_views" not in parse(tmp_path).as_tuple()[0].config_overrides()


def test_env_block(tmp_path, monkeypatch):
    monkeypatch.delenv("THERMAL_TEST_A", raising=False)
    monkeypatch.setenv("THERMAL_TEST_B", "from-shell")
    text = BASE + "env:\n  THERMAL_TEST_A: 4\n  THERMAL_TEST_B: from-recipe\n"
    parsed = parse(tmp_path, text=text)
    assert os.environ["THERMAL_TEST_A"] == "4"
    assert os.environ["THERMAL_TEST_B"] == "from-shell"  # the shell is the command line's level: it wins
    assert parsed.env == {"THERMAL_TEST_A": "4", "THERMAL_TEST_B": "from-recipe"}
    keys, env = load_recipe(write(tmp_path, text))
    assert "env" not in keys and env["THERMAL_TEST_A"] == "4"


def test_mixed_precision_auto_on_cpu(tmp_path):
    train = parse(tmp_path, "--mixed_precision", "auto").training_args
    # no GPU here: auto means fp32 (TrainingArguments then records the effective value)
    assert train.bf16 is False and train.fp16 is False and train.mixed_precision == "no"


def test_the_recipes_precision_wins_over_accelerate_launchs(tmp_path, monkeypatch):
    """`accelerate launch` exports its config's mixed_precision (fp16 in accelerate_config.yaml); TrainingArguments
    would take it whenever bf16 and fp16 are false, so a recipe's `no` (or `auto` on a CPU) must be kept."""
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # bf16 runs on a CPU too: the launcher's value stays
    assert parse(tmp_path).training_args.mixed_precision == "bf16"  # no recipe choice: the launcher's
    assert parse(tmp_path, "--mixed_precision", "no").training_args.mixed_precision == "no"
    assert parse(tmp_path, "--mixed_precision", "auto").training_args.mixed_precision == "no"  # no GPU here
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # no effect on a CPU: said, and recorded as "no"
    assert parse(tmp_path).training_args.mixed_precision == "no"


def test_field_names_unique_and_augmentations_in_sync():
    from thermal_hf.data.transforms import AugmentationConfig

    names = [f.name for t in (ModelArguments, DataArguments, ThermalTrainingArguments) for f in dataclasses.fields(t)]
    assert len(names) == len(set(names))
    data_fields = {f.name for f in dataclasses.fields(DataArguments)}
    assert {f.name for f in dataclasses.fields(AugmentationConfig)} <= data_fields


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")) + sorted((REPO / "tests/recipes").glob("*.yaml")))
def test_shipped_recipes_parse(recipe, tmp_path):
    parsed = parse_recipe([str(recipe), "--output_dir", str(tmp_path / "out"), "--use_cpu", "true"])
    assert parsed.data_args.num_frames >= 1


def test_help_lists_keys(capsys):
    from thermal_hf.train import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for key in ("backbone_lr_multiplier", "class_weighting", "image_size", "learning_rate", "sampling"):
        assert f"--{key}" in out
    # HfArgumentParser's --no_<key> had the key's own help ("Evaluate on eval_split ...") and "(default: False)".
    no_eval = " ".join(out.split("--no_do_eval, --no-do-eval", 1)[1].split("--do_predict", 1)[0].split())
    assert no_eval.startswith("Set do_eval to false (default: true).") and "(default: False)" not in no_eval


@pytest.mark.parametrize("line, expected", [
    ("num_frames: [16, 32]", "key 'num_frames': expected one value (an integer), got the list [16, 32]"),
    ("per_device_train_batch_size: 1.5", "key 'per_device_train_batch_size': expected an integer, got 1.5"),
    ("horizontal_flip_prob: yes", "key 'horizontal_flip_prob': expected a number, got True (YAML reads"),
    ("learning_rate: fast", "key 'learning_rate': expected a number, got 'fast'"),
    ("stem_pool: maybe", "key 'stem_pool': expected true or false, got 'maybe'"),
    ("eval_strategy: no", "key 'eval_strategy': expected one of no, steps, epoch, got False (YAML reads an unquoted"),
    ("eval_strategy: sometimes", "key 'eval_strategy': expected one of no, steps, epoch, got 'sometimes'"),
    ("image_size: [64, wide]", "key 'image_size': expected an integer, got 'wide'"),
])
def test_yaml_values_are_checked_against_the_key_type(tmp_path, line, expected):
    # argparse converts only string defaults and never checks them against choices: without the check these
    # reached torch (batch_size=1.5), a comparison deep in the code (a list), or passed silently (yes -> 1.0).
    recipe = write(tmp_path, with_lines(BASE, line + "\n"))
    with pytest.raises(RecipeError) as err:
        parse_recipe([str(recipe)])
    assert str(err.value).startswith(f"recipe {recipe}: ") and expected in str(err.value)


def test_yaml_values_that_fit_their_key(tmp_path):
    text = with_lines(BASE, "eval_recordings: SL14_R4\nreport_to: [tensorboard]\nper_device_train_batch_size: 4.0\ndropout: 0\n")
    model, data, train = parse_recipe([str(write(tmp_path, text))]).as_tuple()
    assert data.eval_recordings == ["SL14_R4"]  # one name is a list of one
    assert train.report_to == ["tensorboard"]  # a key whose field takes a list as it is
    assert train.per_device_train_batch_size == 4 and isinstance(train.per_device_train_batch_size, int)
    assert model.dropout == 0.0 and train.learning_rate == 5e-3


def test_command_line_errors_say_where(tmp_path):
    with pytest.raises(RecipeError, match=r"^command line: argument --learning_rate.*invalid float value: 'fast'"):
        parse(tmp_path, "--learning_rate", "fast")
    with pytest.raises(RecipeError, match=r"unexpected value\(s\) \['wandb'\] after --report_to, which takes one value"):
        parse(tmp_path, "--report_to", "tensorboard", "wandb")
    with pytest.raises(RecipeError, match="the recipe path must come first"):
        parse_recipe(["--num_frames", "16", str(write(tmp_path, BASE))])


def test_explicit_bf16_wins_over_mixed_precision_auto(tmp_path):
    train = parse(tmp_path, "--mixed_precision", "auto", "--bf16", "true").training_args
    assert train.bf16 is True and train.fp16 is False
    with pytest.raises(RecipeError, match="'mixed_precision: fp16' contradicts bf16: true"):
        parse(tmp_path, "--mixed_precision", "fp16", "--bf16", "true")
    with pytest.raises(RecipeError, match="'bf16' and 'fp16' are both true"):
        parse(tmp_path, "--mixed_precision", "auto", "--bf16", "true", "--fp16", "true")


def test_an_architecture_the_backbone_cannot_run_fails_before_the_data(tmp_path, capsys):
    from thermal_hf.train import main

    # The dataset does not exist: had the data been loaded first, this would be a data error instead.
    recipe = write(tmp_path, BASE.replace("dataset: /data/raw", f"dataset: {tmp_path / 'missing'}"))
    assert main([str(recipe), "--output_dir", str(tmp_path / "out"), "--model_depth", "34"]) == 2
    assert "error: recipe: model_depth must be one of (18, 50, 101), got 34" in capsys.readouterr().err
    assert main([str(recipe), "--output_dir", str(tmp_path / "out"), "--slow_temporal_stride", "3"]) == 2
    assert "slow_temporal_stride (3) must be a multiple of fast_temporal_stride (2)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_model_source_that_cannot_work_fails_before_the_data(tmp_path, capsys):
    from thermal_hf.train import main

    recipe = write(tmp_path, BASE.replace("dataset: /data/raw", f"dataset: {tmp_path / 'missing'}"))
    empty = tmp_path / "empty_model"
    empty.mkdir()
    for source in (tmp_path / "nope", empty):
        assert main([str(recipe), "--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(source)]) == 2
        assert f"recipe key 'model_name_or_path': {source} is not a saved model folder" in capsys.readouterr().err
    # Evaluating without a trained model would score random weights.
    assert main([str(recipe), "--output_dir", str(tmp_path / "out"), "--do_train", "false"]) == 2
    assert "'do_train' is false but 'model_name_or_path' is not set" in capsys.readouterr().err
    # A missing raw checkpoint is named before the (here missing) data, not after it is converted and loaded.
    missing = tmp_path / "r50.pyth"
    assert main([str(recipe), "--output_dir", str(tmp_path / "out"), "--pretrained", str(missing)]) == 2
    assert f"recipe key 'pretrained': {missing} not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_key_of_ours_has_help():
    from transformers import TrainingArguments

    inherited = {f.name for f in dataclasses.fields(TrainingArguments)}
    ours = [f for t in (ModelArguments, DataArguments, ThermalTrainingArguments) for f in dataclasses.fields(t)
            if f.init and f.name not in inherited]
    assert [f.name for f in ours if not f.metadata.get("help")] == []


def test_no_pinned_memory_without_an_accelerator(tmp_path):
    # torch warns "pin_memory ... no accelerator is found" on every DataLoader of a CPU run otherwise.
    assert parse(tmp_path).training_args.dataloader_pin_memory is False  # BASE has use_cpu: true


@pytest.mark.parametrize("key", ["num_train_epochs", "learning_rate", "per_device_train_batch_size", "seed",
                                 "num_frames"])
def test_yaml_null_for_a_key_that_cannot_be_off_is_refused_by_name(tmp_path, key):
    # These reached a comparison with None inside __post_init__ (a TypeError traceback), or passed as None.
    recipe = write(tmp_path, with_lines(BASE, f"{key}: null\n"))
    with pytest.raises(RecipeError) as err:
        parse_recipe([str(recipe)])
    assert str(err.value).startswith(f"recipe {recipe}: key '{key}': expected ")
    assert "got null; this key cannot be switched off" in str(err.value)


def test_yaml_null_still_switches_off_an_optional_key(tmp_path):
    data = parse_recipe([str(write(tmp_path, with_lines(BASE, "frame_rate: null\n")))]).data_args
    assert data.frame_rate is None


@pytest.mark.parametrize("line, cli, expected", [
    ("num_frames: 0", ("--num_frames", "0"), "key 'num_frames': expected a positive integer; got 0"),
    ("loss: foo", ("--loss", "foo"), "key 'loss': expected one of cross_entropy, focal; got 'foo'"),
    ("lr_scheduler_type: cosinus", ("--lr_scheduler_type=cosinus",),
     "key 'lr_scheduler_type': cosinus is not a valid SchedulerType"),
    ("per_device_train_batch_size: 0", ("--per_device_train_batch_size", "0"),
     "key 'per_device_train_batch_size': expected >= 1; got 0"),
])
def test_the_dataclasses_errors_name_where_the_key_was_set(tmp_path, line, cli, expected):
    """__post_init__ (ours and transformers') sees values, not sources: the parser adds the file or command line."""
    recipe = write(tmp_path, with_lines(BASE, line + "\n"))
    with pytest.raises(RecipeError) as err:
        parse_recipe([str(recipe)])
    assert str(err.value).startswith(f"recipe {recipe}: {expected}")
    with pytest.raises(RecipeError) as err:  # the recipe is fine; the command line sets the bad value
        parse(tmp_path, *cli)
    assert str(err.value).startswith(f"command line: {expected}")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without an accelerator")
def test_bf16_without_use_cpu_on_a_machine_without_an_accelerator_runs_on_the_cpu(tmp_path):
    # transformers refuses bf16 without use_cpu when there is no GPU ("Your setup doesn't support bf16/gpu");
    # the run is on the CPU either way, and bf16 on the CPU is allowed.
    for cli in (("--bf16", "true"), ("--mixed_precision", "bf16")):
        train = parse(tmp_path, "--use_cpu", "false", *cli).training_args
        assert train.bf16 is True and train.use_cpu is True
