"""Class weights (inverse frequency, effective number) and the `thermal-hf stats` command."""

from __future__ import annotations

import numpy as np
import pytest
from test_recordings import CATEGORIES, write_raw_dataset

from thermal_hf.data.class_weights import class_weights
from thermal_hf.data.convert import convert_dataset
from thermal_hf.data.stats import main, split_class_counts


def test_inverse_frequency_formula():
    w = class_weights([10, 30, 60])
    np.testing.assert_allclose(w, [100 / (3 * 10), 100 / (3 * 30), 100 / (3 * 60)], rtol=1e-6)
    assert w.dtype == np.float32
    np.testing.assert_allclose(class_weights([5, 5, 5, 5]), np.ones(4))


def test_absent_classes_get_zero_and_warning():
    with pytest.warns(UserWarning, match="no training samples.*walking"):
        w = class_weights([10, 0, 30], class_names=["sitting", "walking", "standing"])
    # K counts only the classes present
    np.testing.assert_allclose(w, [40 / (2 * 10), 0.0, 40 / (2 * 30)], rtol=1e-6)


def test_effective_number():
    counts = np.array([1, 10, 100, 0])
    beta = 0.99
    with pytest.warns(UserWarning):
        w = class_weights(counts, "effective_number", beta=beta)
    raw = (1 - beta) / (1 - beta ** counts[:3])
    np.testing.assert_allclose(w[:3], raw * 3 / raw.sum(), rtol=1e-5)
    assert w[3] == 0 and w[0] > w[1] > w[2]
    assert w[:3].sum() == pytest.approx(3.0, rel=1e-5)
    # beta -> 0 gives equal weights, i.e. no re-weighting
    np.testing.assert_allclose(class_weights([1, 10, 100], "effective_number", beta=0.0), np.ones(3), rtol=1e-6)


def test_none_and_bad_input():
    np.testing.assert_array_equal(class_weights([3, 0, 1], "none"), np.ones(3, np.float32))
    for bad in ([], [0, 0], [-1, 2]):
        with pytest.raises(ValueError):
            class_weights(bad)
    with pytest.raises(ValueError, match="unknown class weighting"):
        class_weights([1, 2], "sqrt")
    with pytest.raises(ValueError, match="beta"):
        class_weights([1, 2], "effective_number", beta=1.0)


@pytest.fixture(scope="module")
def datasets_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("stats")
    raw = write_raw_dataset(base / "raw")
    convert_dataset(raw, base / "ds", num_frames=2)
    return raw, base / "ds"


def test_counts_converted_and_raw_agree(datasets_dirs):
    raw, ds = datasets_dirs
    names, counts = split_class_counts(ds)
    assert names == CATEGORIES
    np.testing.assert_array_equal(counts["train"], [0, 3, 3, 3])
    np.testing.assert_array_equal(counts["validation"], [3, 0, 6, 0])
    names_raw, counts_raw = split_class_counts(raw)
    assert names_raw == names
    for split in counts:
        np.testing.assert_array_equal(counts_raw[split], counts[split])
    _, kf = split_class_counts(raw, target="keyframe")
    np.testing.assert_array_equal(kf["train"], [0, 3, 0, 3])


def test_what_a_raw_folder_leaves_out_is_said(datasets_dirs, capsys, tmp_path):
    import shutil

    raw, ds = datasets_dirs
    broken = tmp_path / "raw"
    shutil.copytree(raw, broken)
    victim = sorted((broken / "frames").glob("*.h5"))[0]
    victim.write_bytes(victim.read_bytes()[:2000])  # a truncated copy
    assert main([str(broken)]) == 0
    err = capsys.readouterr().err
    assert "problem(s) left out of these counts, in the dataset folder" in err and victim.name in err
    assert "`thermal-hf convert` refuses the folder" in err
    # a recording whose header reads but whose frames do not (a damaged chunk): convert refuses it, so it is left out
    from test_recordings import _corrupt_chunk

    shutil.rmtree(broken)
    shutil.copytree(raw, broken)
    _corrupt_chunk(broken)
    assert main([str(broken)]) == 0
    assert "frames/R1.h5" in capsys.readouterr().err
    # --target cannot change a converted folder's samples: said, not ignored
    assert main([str(ds), "--target", "keyframe"]) == 0
    assert "target keyframe applies to raw folders only" in capsys.readouterr().err


def test_stats_cli(datasets_dirs, capsys, tmp_path):
    _, ds = datasets_dirs
    assert main([str(ds)]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[1]: line.split() for line in captured.out.splitlines() if line[:3].strip().isdigit()}
    assert lines["standing"][2:] == ["3", "0", "1.000"]
    assert lines["sitting"][2:] == ["0", "3", "0.000"]
    assert "inverse_frequency" in captured.out
    assert "warning:" in captured.err and "sitting" in captured.err
    assert main([str(ds), "--weighting", "effective_number", "--beta", "0.9"]) == 0
    assert "effective_number" in capsys.readouterr().out
    assert main([str(tmp_path)]) == 2
    assert "neither a converted" in capsys.readouterr().err
    assert main([str(tmp_path / "missing")]) == 2
    assert f"dataset {tmp_path / 'missing'}: folder not found" in capsys.readouterr().err
    for weighting in ("inverse_sqrt_frequency", "none"):  # every weighting the README lists
        assert main([str(ds), "--weighting", weighting]) == 0
        assert f"weights: {weighting}" in capsys.readouterr().out
