import joblib
import pytest

import records
from conftest import REPO, assert_one_line_error, run_script


@pytest.fixture
def two_runs(train_run):
    _, adam = train_run(name="adam_seed0", epochs=2)
    _, sgd = train_run("--optimizer", "sgd", name="sgd_seed0", epochs=2)
    return adam.parent


def png_ok(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_plot_writes_the_figures(two_runs, tmp_path):
    proc = run_script("plot.py", two_runs, "--out", tmp_path / "fig", "--log-y", "--smooth", "3")
    assert proc.returncode == 0, proc.stderr
    assert "2 run(s), 2 curve(s)" in proc.stdout
    assert png_ok(tmp_path / "fig" / "curves.png") and png_ok(tmp_path / "fig" / "iterations.png")


def test_plot_groups_seeds_into_a_band(train_run, tmp_path):
    import plot

    for seed in (0, 1):
        train_run("--seed", seed, name=f"adam_seed{seed}", epochs=1)
    groups = plot.group_runs(plot.load_runs([tmp_path / "out"]))
    assert list(groups) == ["adam"] and len(groups["adam"]) == 2
    epochs, mean, low, high = plot.stack(groups["adam"], "val_loss")
    assert list(epochs) == [0, 1] and (low <= mean).all() and (mean <= high).all() and (low < high).any()


def test_moving_average_is_trailing_mean():
    import plot

    assert plot.moving_average([1.0, 2.0, 3.0, 4.0], 2).tolist() == [1.5, 2.5, 3.5]


def test_no_runs_is_a_clear_error(tmp_path):
    assert_one_line_error(run_script("plot.py", tmp_path), "no runs")
    assert_one_line_error(run_script("plot.py", tmp_path / "missing"), "does not exist")


def test_corrupt_metrics_is_a_clear_error(two_runs, tmp_path):
    (two_runs / "sgd_seed0" / "metrics.pkl").write_bytes(b"garbage")
    proc = run_script("plot.py", two_runs, "--out", tmp_path)
    assert_one_line_error(proc, "sgd_seed0/metrics.pkl is corrupt")


def test_different_epoch_counts_are_plotted_and_said(train_run, tmp_path):
    train_run(name="adam_seed0", epochs=1)
    train_run("--optimizer", "sgd", name="sgd_seed0", epochs=2)
    proc = run_script("plot.py", tmp_path / "out", "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr
    assert "different epoch counts" in proc.stdout
    assert png_ok(tmp_path / "fig" / "curves.png")


def test_run_sh_quick_mode_trains_both_and_plots(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "quick"))
    proc = subprocess.run(["sh", "run.sh", "--quick", "--limit-train", "256", "--limit-val", "64", "--epochs", "2",
                           "--quiet", "--data-root", str(tmp_path / "data")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for opt in ("adam", "sgd"):
        assert joblib.load(tmp_path / "quick" / f"{opt}_seed0" / "metrics.pkl")["epoch"] == [0, 1, 2]
    assert png_ok(tmp_path / "quick" / "curves.png")


def test_run_sh_stops_on_the_first_error(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "o"))
    proc = subprocess.run(["sh", "run.sh", "--quick", "nosuchopt", "sgd"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'nosuchopt'" in proc.stderr
    assert "training sgd" not in proc.stdout
