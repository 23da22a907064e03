"""The sweep: 2 optimizers x 3 learning rates x 2 seeds x 2 epochs of the MLP on tiny synthetic data."""
import json
import signal
import subprocess
import sys
import time

import pytest

from optstudy.records import store as records
from conftest import REPO, assert_one_line_error, comparable, run_in_process, run_script

# The MNIST MLP: the solo training path (the CPU's default does not batch it), and SGD at lr 30 diverges.
SWEEP = ["--optimizers", "adam", "sgd", "--lrs", "1e-3,1e-2,30", "--seeds", "0", "1", "--epochs", "2",
         "--dataset", "synthetic", "--limit-train", "256", "--limit-val", "128", "--batch-size", "64",
         "--threads", "1", "--workload", "mnist-mlp"]
FIGURES = ("curves.png", "iterations.png", "lr_sensitivity.png", "figure3.png")


def sweep(out, name, *extra):
    return run_script("sweep.py", "--name", name, "--output-dir", out, *SWEEP, *extra)


def all_metrics(sweep_dir):
    return {str(d.relative_to(sweep_dir)): comparable(records.load_metrics(d)) for d in records.find_runs([sweep_dir])}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    proc = sweep(out, "ref")
    assert proc.returncode == 0, proc.stderr
    return out / "ref", proc


def test_sweep_writes_records_plan_table_and_figures(reference):
    sweep_dir, proc = reference
    runs = records.find_runs([sweep_dir])
    assert len(runs) == 3 * 2 + 2                                   # grid with seed 0, then best lr with seed 1
    assert (sweep_dir / "adam" / "lr_0.001" / "seed_0" / "config.json").exists()
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["lrs"] == [0.001, 0.01, 30.0] and plan["weight_decay"] == 0.0
    assert set(plan["best_lr"]) == {"adam", "sgd"} and plan["best_lr"]["sgd"] != 30.0
    for opt, lr in plan["best_lr"].items():
        assert (sweep_dir / opt / f"lr_{lr:g}" / "seed_1" / "metrics.pkl").exists()
    table = (sweep_dir / "results.md").read_text()
    assert "| adam |" in table and "| sgd |" in table and "weight decay 0.0" in table and "±" in table
    assert (sweep_dir / "results.csv").read_text().startswith("optimizer,best_lr,weight_decay")
    for fig in FIGURES:
        assert (sweep_dir / fig).stat().st_size > 5000


def test_the_best_lr_minimises_final_train_loss(reference):
    sweep_dir, _ = reference
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    for opt in ("adam", "sgd"):
        finals = {}
        for lr in plan["lrs"]:
            m = records.load_metrics(sweep_dir / opt / f"lr_{lr:g}" / "seed_0")
            finals[lr] = float("inf") if m["status"] == "diverged" else m["train_loss"][-1]
        assert plan["best_lr"][opt] == min(finals, key=finals.get)


def test_a_diverged_run_is_recorded_and_does_not_stop_the_sweep(reference):
    sweep_dir, proc = reference
    m = records.load_metrics(sweep_dir / "sgd" / "lr_30" / "seed_0")
    assert m["status"] == "diverged" and m["diverged"]["epoch"] >= 1


def test_running_it_again_trains_nothing(reference):
    sweep_dir, _ = reference
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("metrics.pkl")}
    proc = sweep(sweep_dir.parent, "ref")
    assert proc.returncode == 0, proc.stderr
    assert "6 run(s): 6 already finished, 0 trained" in proc.stdout
    assert "2 run(s): 2 already finished, 0 trained" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("metrics.pkl")} == before


def test_killed_midway_then_rerun_finishes_with_the_same_numbers(reference, tmp_path):
    cmd = [sys.executable, str(REPO / "src" / "sweep.py"), "--name", "k", "--output-dir", str(tmp_path), *SWEEP]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(tmp_path.rglob("metrics.pkl"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(tmp_path.rglob("metrics.pkl"))) < 8                  # it really was cut short
    finish = sweep(tmp_path, "k")
    assert finish.returncode == 0, finish.stderr
    assert all_metrics(tmp_path / "k") == all_metrics(reference[0])


def test_a_different_plan_in_the_same_folder_is_refused(reference):
    sweep_dir, _ = reference
    proc = run_script("sweep.py", "--name", "ref", "--output-dir", sweep_dir.parent, *SWEEP[:4], "1e-3", *SWEEP[5:])
    assert_one_line_error(proc, "holds a sweep with other settings", "lrs")


@pytest.mark.parametrize("args, fragment", [
    (["--lrs", "a:b:c"], "--lrs 'a:b:c'"),
    (["--lrs", "0,1e-3"], "must be positive"),
    (["--lr", "0.1"], "--lr: set by the sweep itself"),
    (["--optimizers", "adam", "nope"], "unknown optimizer 'nope'"),
    (["--backend", "dask"], "needs --scheduler"),
    (["--precision", "fp8"], "invalid choice: 'fp8'"),
])
def test_bad_sweep_arguments(tmp_path, args, fragment):
    proc = run_in_process("sweep.py", "--name", "bad", "--output-dir", tmp_path, "--epochs", "1", *args)
    assert_one_line_error(proc, fragment)


def test_dask_backend_on_loopback_gives_the_same_runs(reference, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        proc = sweep(tmp_path, "ref", "--backend", "dask", "--scheduler", cluster.scheduler_address)
    assert proc.returncode == 0, proc.stderr
    assert all_metrics(tmp_path / "ref") == all_metrics(reference[0])
