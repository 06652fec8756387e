"""`thermal-hf doctor RECIPE`: a checklist, a clear verdict and the exit status."""

from __future__ import annotations

from pathlib import Path

from thermal_hf.doctor import main

TINY = Path(__file__).resolve().parent / "recipes" / "tiny.yaml"


def test_ready_on_a_good_recipe(synthetic_root, tmp_path, capsys):
    # a raw folder: validated, then converted into the cache training uses
    status = main([str(TINY), "--dataset", str(synthetic_root), "--cache_dir", str(tmp_path / "cache"),
                   "--output_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0, out
    for line in ("[ OK ] recipe", "[ OK ] CUDA", "[ OK ] data validation", "[ OK ] batch", "[ OK ] forward/backward",
                 "[ OK ] output folder"):
        assert line in out, out
    assert "recordings" in out and "READY: this recipe should train here" in out
    assert "16 frames (consecutive recorded frames)" in out
    status = main([str(TINY), "--dataset", str(synthetic_root), "--cache_dir", str(tmp_path / "cache"),
                   "--output_dir", str(tmp_path / "out"), "--frame_rate", "2"])
    out = capsys.readouterr().out
    assert status == 0 and "16 frames (2 frames/s: 8.0 s windows)" in out, out


def test_failures_give_a_verdict_and_exit_1(tmp_path, capsys):
    status = main([str(TINY), "--dataset", str(tmp_path / "nowhere"), "--pretrained", str(tmp_path / "r50.pyth"),
                   "--output_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 1
    assert "[FAIL] data folder" in out and "[FAIL] pretrained checkpoint" in out and "r50.pyth not found" in out
    assert "NOT READY: 2 check(s) failed" in out


def test_bad_recipe_key(tmp_path, capsys):
    status = main([str(TINY), "--lerning_rate", "0.1"])
    out = capsys.readouterr().out
    assert status == 2 and "[FAIL] recipe" in out and "Did you mean: learning_rate" in out  # as train exits


def test_what_training_would_refuse_or_crash_on_is_not_ready(converted_dataset, tmp_path, capsys):
    common = [str(TINY), "--dataset", str(converted_dataset), "--output_dir", str(tmp_path / "out")]
    for key, value in (("gradient_accumulation_steps", "0"), ("class_weight_beta", "2"),
                       ("per_device_train_batch_size", "0"), ("report_to", "not_an_integration")):
        assert main([*common, f"--{key}", value]) == 2, key
        assert "[FAIL] recipe" in capsys.readouterr().out
    # the loss training computes (class weights, focal) is what the doctor checks
    assert main([*common, "--class_weighting", "inverse_frequency", "--loss", "focal", "--mixup_alpha", "0.4"]) == 0
    assert "[ OK ] forward/backward: loss" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()  # a check writes nothing (Trainer would create its output_dir)
    # recipes that evaluate every epoch (slowfast.yaml) are ready too: training gives Trainer its eval split
    assert main([*common, "--eval_strategy", "epoch"]) == 0
    assert "[ OK ] forward/backward: loss" in capsys.readouterr().out


def test_a_missing_folder_training_would_generate_is_not_generated_by_the_check(tmp_path, capsys):
    typo = tmp_path / "tour-sd"
    status = main([str(TINY), "--dataset", str(typo), "--synthetic_if_missing", "true", "--cache_dir",
                   str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "[WARN] data folder" in out and "training will generate a synthetic dataset there" in out, out
    assert status == 0 and not typo.exists() and not (tmp_path / "cache").exists()


def test_an_output_folder_train_would_refuse_fails_the_check(synthetic_root, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (out / "checkpoint-2" / "optimizer.pt").write_bytes(b"")
    common = [str(TINY), "--dataset", str(synthetic_root), "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(out)]
    assert main(common) == 1
    assert "[FAIL] output folder" in capsys.readouterr().out
    assert main([*common, "--resume_from_checkpoint", "true"]) == 0
    assert "training resumes from" in capsys.readouterr().out
    assert main([*common, "--overwrite_output_dir", "true"]) == 0
    assert "training first removes the earlier run's checkpoint-2" in capsys.readouterr().out


def test_the_cpu_note_fits_the_recipes_network():
    from types import SimpleNamespace

    from thermal_hf.doctor import _cpu_speed_note

    assert "slow for SlowFast R50 at 256 x 384" in _cpu_speed_note(SimpleNamespace(model_depth=None, image_size=None))
    native = _cpu_speed_note(SimpleNamespace(model_depth=18, image_size=(40, 60)))
    assert "R18 at 40 x 60: small enough for the CPU" in native and "slow" not in native


def test_loader_workers_beyond_the_cores_are_flagged(monkeypatch):
    from types import SimpleNamespace

    from thermal_hf import doctor

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(doctor, "_cpu_cores", lambda: 2)

    def verdict(workers, world_size=1):
        checklist = doctor.Checklist()
        doctor.check_loader_workers(checklist, SimpleNamespace(dataloader_num_workers=workers, world_size=world_size))
        return checklist.items[-1]

    status, _, detail = verdict(4)
    assert status == doctor.WARN and "5 processes for 2 cores" in detail and "--dataloader_num_workers 1 fits" in detail
    assert verdict(1)[0] == doctor.OK and verdict(0)[0] == doctor.OK
    assert verdict(1, world_size=2)[0] == doctor.WARN  # 2 processes + 2 workers on 2 cores
