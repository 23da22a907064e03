import joblib
import pytest

from conftest import REPO, assert_one_line_error, drawn_lines, run_in_process, run_script
from optstudy.records import store


@pytest.fixture
def two_runs(train_run):
    _, adam = train_run(name="adam_seed0", epochs=2)
    _, sgd = train_run("--optimizer", "sgd", name="sgd_seed0", epochs=2)
    return adam.parent


def png_ok(path):
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def assert_each_run_drawn_per_epoch(lines, runs):
    """Every run's every per-epoch metric is a line of the curves figure, at its own epochs (a
    line's label is the optimizer, then the settings that tell the curves apart)."""
    for name, run_dir in runs.items():
        metrics = store.load_metrics(run_dir)
        for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
            epochs = [float(e) for e in metrics["epoch"]]
            assert any(label.split()[0] == name and x == epochs and y == metrics[key] for label, x, y in lines), (name, key)


def test_plot_writes_the_figures(two_runs, tmp_path, saved_figures):
    proc = run_in_process("plot.py", two_runs, "--out", tmp_path / "fig", "--log-y", "--smooth", "3")
    assert proc.returncode == 0, proc.stderr
    assert "2 run(s), 2 curve(s)" in proc.stdout
    assert png_ok(tmp_path / "fig" / "curves.png") and png_ok(tmp_path / "fig" / "iterations.png")
    assert_each_run_drawn_per_epoch(drawn_lines(saved_figures["curves.png"]),
                                    {"adam": two_runs / "adam_seed0", "sgd": two_runs / "sgd_seed0"})
    iterations = {label.split()[0]: y for label, _, y in drawn_lines(saved_figures["iterations.png"])}
    for name in ("adam", "sgd"):        # the per-minibatch losses, as a trailing mean of 3
        losses = store.load_metrics(two_runs / f"{name}_seed0")["iter_loss"]
        expected = [sum(losses[i - 3:i]) / 3 for i in range(3, len(losses) + 1)]
        assert iterations[name] == pytest.approx(expected), name


def test_plot_groups_seeds_into_a_band(train_run, tmp_path):
    from optstudy.analysis import plotting

    for seed in (0, 1):
        train_run("--seed", seed, name=f"adam_seed{seed}", epochs=1)
    groups = plotting.group_runs(plotting.load_runs([tmp_path / "out"]))
    assert list(groups) == ["adam"] and len(groups["adam"]) == 2
    epochs, mean, low, high = plotting.stack(groups["adam"], "test_loss")
    assert list(epochs) == [0, 1] and (low <= mean).all() and (mean <= high).all() and (low < high).any()


def test_moving_average_is_trailing_mean():
    from optstudy.analysis import plotting

    assert plotting.moving_average([1.0, 2.0, 3.0, 4.0], 2).tolist() == [1.5, 2.5, 3.5]


def test_no_runs_is_a_clear_error(tmp_path):
    assert_one_line_error(run_script("plot.py", tmp_path), "no runs")
    assert_one_line_error(run_script("plot.py", tmp_path / "missing"), "does not exist")


def test_corrupt_metrics_is_a_clear_error(two_runs, tmp_path):
    (two_runs / "sgd_seed0" / "metrics.json").write_bytes(b"garbage")
    proc = run_script("plot.py", two_runs, "--out", tmp_path)
    assert_one_line_error(proc, "sgd_seed0/metrics.json is corrupt")


def test_different_epoch_counts_are_plotted_and_said(train_run, tmp_path, saved_figures):
    train_run(name="adam_seed0", epochs=1)
    train_run("--optimizer", "sgd", name="sgd_seed0", epochs=2)
    proc = run_in_process("plot.py", tmp_path / "out", "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr
    assert "different epoch counts" in proc.stdout
    assert png_ok(tmp_path / "fig" / "curves.png")
    assert_each_run_drawn_per_epoch(drawn_lines(saved_figures["curves.png"]),
                                    {"adam": tmp_path / "out" / "adam_seed0", "sgd": tmp_path / "out" / "sgd_seed0"})


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
    assert proc.returncode == 2 and "unknown optimizer 'nosuchopt'" in proc.stderr
    assert "training sgd" not in proc.stdout


# ---------------------------------------------------------------- settings beyond optimizer, lr and weight decay

# Pairs of runs with one optimizer, lr and weight decay that differ in one other setting.
PAIRS = {
    "dropout": (["--workload", "mnist-mlp", "--dropout", "paper"], ["--workload", "mnist-mlp", "--dropout", "none"]),
    "batch_size": (["--workload", "mnist-logreg", "--batch-size", "64"],
                   ["--workload", "mnist-logreg", "--batch-size", "32"]),
    "workload": (["--workload", "mnist-logreg", "--dropout", "none", "--lr-schedule", "constant"],
                 ["--workload", "imdb-bow-logreg", "--dropout", "none", "--lr-schedule", "constant"]),
}
LABELS = {"dropout": ("dropout=paper", "dropout=none"), "batch_size": ("batch_size=64", "batch_size=32"),
          "workload": ("workload=mnist-logreg", "workload=imdb-bow-logreg")}


@pytest.fixture(scope="module")
def setting_pairs(tmp_path_factory):
    """<root>/<setting>/{a,b}: one epoch each on tiny synthetic data, one weight decay for all; the six
    runs are six different settings."""
    import train
    from optstudy.core.cli import run_main
    from conftest import TINY

    root = tmp_path_factory.mktemp("pairs")
    for setting, pair in PAIRS.items():
        for name, extra in zip("ab", pair):
            argv = [*TINY, "--epochs", "1", "--weight-decay", "0", "--output-dir", str(root / setting),
                    "--run-name", name, "--data-root", str(root / "data"), *extra]
            assert run_main(train.main, argv) == 0
    return root


@pytest.mark.parametrize("setting", list(PAIRS))
def test_runs_that_differ_in_another_setting_are_two_labelled_curves(setting_pairs, setting):
    from optstudy.analysis import plotting

    groups = plotting.group_runs(plotting.load_runs([setting_pairs / setting]))
    assert len(groups) == 2 and all(len(runs) == 1 for runs in groups.values())
    first, second = LABELS[setting]
    (a,), (b,) = ([label for label in groups if fragment in label] for fragment in (first, second))
    assert a != b and a.startswith("adam ") and b.startswith("adam ")
    assert "lr=" not in a and "weight_decay=" not in a                 # what is the same is not in the label


def test_plot_draws_a_curve_for_every_setting(setting_pairs, tmp_path):
    proc = run_script("plot.py", setting_pairs, "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr
    # three workloads: a figure each, never the MLP, MNIST and IMDB in one axes
    for workload, n in (("mnist-mlp", 2), ("mnist-logreg", 3), ("imdb-bow-logreg", 1)):
        assert f"{workload}: {n} run(s), {n} curve(s)" in proc.stdout, proc.stdout
        assert png_ok(tmp_path / "fig" / f"curves-{workload}.png")
    assert "6 run(s) of 3 workloads" in proc.stdout
    assert not (tmp_path / "fig" / "curves.png").exists()


def test_seeds_of_one_setting_still_form_one_band(train_run, tmp_path):
    from optstudy.analysis import plotting

    for seed in (0, 1):
        train_run("--workload", "mnist-mlp", "--dropout", "paper", "--seed", seed, name=f"paper_seed{seed}", epochs=1)
    train_run("--workload", "mnist-mlp", "--dropout", "none", name="none_seed0", epochs=1)
    groups = plotting.group_runs(plotting.load_runs([tmp_path / "out"]))
    assert sorted(len(runs) for runs in groups.values()) == [1, 2]
    (band,) = [label for label, runs in groups.items() if len(runs) == 2]
    assert "dropout=paper" in band and "seed" not in band
