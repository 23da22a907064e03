"""The two classic write-ups: the airfoil data as D2L reads it, what the write-ups measure inside an
epoch (probes.py), and both commands end to end on synthetic data."""
import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import REPO, TINY, assert_one_line_error, run_in_process
from optstudy.core.cli import UserError
from optstudy.data import datasets
from optstudy.records import store
from optstudy.training import flags, setup

SHARED_AIRFOIL = REPO.parent / "shared" / "data" / datasets.AIRFOIL_FILE


def metrics(path):
    return json.loads((path / store.METRICS_JSON).read_text())


def test_the_airfoil_file_is_checked_and_missing_is_one_line(tmp_path):
    with pytest.raises(UserError, match="put it .* into"):
        datasets.load_airfoil(tmp_path, tmp_path)
    (tmp_path / datasets.AIRFOIL_FILE).write_text("1\t2\t3\t4\t5\t6\n")
    with pytest.raises(UserError, match="is not D2L's airfoil file"):
        datasets.load_airfoil(tmp_path, tmp_path)


def test_airfoil_columns_are_standardised_over_all_rows_then_cut_to_1500():
    rng = np.random.default_rng(1)
    table = rng.normal(3.0, 2.0, size=(1503, 6))
    data = datasets.airfoil_data(table, "t")
    standard = (table - table.mean(0)) / table.std(0)                   # numpy's std: ddof 0, as D2L's
    assert data.train_x.shape == (1500, 5) and data.train_y.shape == (1500,)
    assert np.allclose(data.train_x.numpy(), standard[:1500, :5], atol=1e-6)
    assert np.allclose(data.test_y.numpy(), standard[:1500, 5], atol=1e-6)   # D2L evaluates on the same rows


@pytest.mark.slow
def test_the_real_airfoil_file(tmp_path):
    if not SHARED_AIRFOIL.is_file():
        pytest.skip("no airfoil_self_noise.dat beside the repository")
    shutil.copy(SHARED_AIRFOIL, tmp_path)
    assert hashlib.sha1((tmp_path / datasets.AIRFOIL_FILE).read_bytes()).hexdigest() == datasets.AIRFOIL_SHA1
    data = datasets.load_airfoil(tmp_path, tmp_path)
    assert len(data.train_y) == 1500 and abs(float(data.train_y.mean())) < 0.05


def train(tmp_path, *argv, name="run", epochs=2):
    return run_in_process("train.py", *TINY, "--epochs", epochs, "--output-dir", tmp_path / "out", "--run-name", name,
                          "--data-root", tmp_path / "data", *argv)


def test_a_window_of_one_epochs_batches_is_that_epochs_training_accuracy(tmp_path):
    # 256 samples in minibatches of 64: 4 a epoch; a window of 4 is the epoch's own accuracy
    assert train(tmp_path, "--workload", "mnist-logreg", "--window-batches", 4).returncode == 0
    m = metrics(tmp_path / "out" / "run")
    assert m["window_acc"] == pytest.approx(m["train_acc"][1:], abs=1e-9)
    assert m["window_loss"] == pytest.approx(m["train_loss"][1:], rel=1e-6)   # equal batches: mean of means


def test_windows_run_across_epochs_and_across_a_resume(tmp_path):
    assert train(tmp_path, "--workload", "mnist-logreg", "--window-batches", 3, name="whole", epochs=3).returncode == 0
    assert train(tmp_path, "--workload", "mnist-logreg", "--window-batches", 3, name="parts", epochs=1).returncode == 0
    assert train(tmp_path, "--workload", "mnist-logreg", "--window-batches", 3, "--resume", name="parts",
                 epochs=3).returncode == 0
    whole, parts = metrics(tmp_path / "out" / "whole"), metrics(tmp_path / "out" / "parts")
    assert len(whole["window_acc"]) == 4 and whole["window_open"]["batches"] == 0      # 12 batches, windows of 3
    assert (parts["window_acc"], parts["window_open"]) == (whole["window_acc"], whole["window_open"])


def test_the_whole_data_loss_every_200_examples_ends_at_the_epochs_loss(tmp_path):
    proc = run_in_process("train.py", "--workload", "airfoil-linreg", "--dataset", "synthetic", "--threads", "1",
                          "--quiet", "--eval-every-examples", "200", "--time-steps", "--output-dir", tmp_path,
                          "--run-name", "a", "--data-root", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    m = metrics(tmp_path / "a")
    assert m["eval_examples"] == list(range(200, 3001, 200))          # 2 epochs of 1,500, counted across epochs
    assert m["eval_train_loss"][-1] == pytest.approx(m["test_loss"][-1], rel=1e-6)   # the same rows, the same model
    assert len(m["step_seconds"]) == 2 and all(0 < s < t for s, t in zip(m["step_seconds"], m["seconds"][1:]))


def test_probes_are_refused_in_a_stack(tmp_path):
    argv = lambda name: [*TINY, "--workload", "mnist-logreg", "--window-batches", "2", "--output-dir", str(tmp_path),
                         "--run-name", name]
    with pytest.raises(UserError, match="measure solo runs"):
        setup.train_runs([flags.parse(argv("a")), flags.parse([*argv("b"), "--seed", "1"])])


def test_the_d2l_writeup_end_to_end_gives_its_figure_numbers_and_verdict(tmp_path):
    proc = run_in_process("writeups.py", "d2l-adam", "--quick", "--seeds", "0", "1", "--output-dir", tmp_path,
                          "--threads", "1", "--png", tmp_path / "docs" / "d2l.png")
    assert proc.returncode == 0, proc.stderr
    numbers = (tmp_path / "d2l-adam-quick" / "d2l-adam.md").read_text()
    assert "Verdict: scratch Adam vs torch Adam, final whole-data loss" in numbers and "2 paired seeds" in numbers
    assert (tmp_path / "docs" / "d2l.png").read_bytes()[:4] == b"\x89PNG"
    again = run_in_process("writeups.py", "d2l-adam", "--quick", "--seeds", "0", "1", "--output-dir", tmp_path)
    assert "4 already finished" in again.stdout                        # re-running trains nothing


def test_the_tutorial_writeup_end_to_end(tmp_path):
    proc = run_in_process("writeups.py", "tutorial-cnn", "--quick", "--seeds", "0", "1", "--output-dir", tmp_path,
                          "--threads", "1", "--limit-train", "200", "--window-batches", "10")
    assert proc.returncode == 0, proc.stderr
    numbers = (tmp_path / "tutorial-cnn-quick" / "tutorial-cnn.md").read_text()
    assert "windows of 10 minibatches" in numbers and "Adam's mean over the seeds is ahead of SGD's in" in numbers
    assert "measured here" in numbers


def test_a_bad_writeup_name_is_one_line(tmp_path):
    assert_one_line_error(run_in_process("writeups.py", "d2l-adam", "--name", "../x", "--output-dir", tmp_path),
                          "plain folder name")
