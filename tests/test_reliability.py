"""Runs and sweeps that never mix, mislead or run foreign code (the four classes of failure seen when
a user tried 158 bad, hostile or interrupted inputs), and the table of bad command lines."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

from optstudy.records import store as records
from conftest import REPO, TINY, assert_one_line_error, run_in_process, run_script

# The CNN, with epochs long enough (16 steps) for a signal to land inside a run.
SWEEP = ["--optimizers", "adam", "--lrs", "1e-3,1e-2", "--seeds", "0", "--epochs", "3",
         "--dataset", "synthetic", "--limit-train", "1024", "--limit-val", "128", "--batch-size", "64",
         "--threads", "1"]
# Where no signal is involved, the logistic regression: the same sweep machinery, 50x faster.
FAST_SWEEP = ["--workload", "mnist-logreg", *SWEEP, "--limit-train", "256"]


def popen(script, *args):
    return subprocess.Popen([sys.executable, str(REPO / "src" / script), *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise TimeoutError


def has_epoch(run_dir, epoch):
    try:
        return records.load_metrics(run_dir)["epoch"][-1] >= epoch
    except Exception:
        return False


# ---------------------------------------------------------------- 1. sweeps pick only finished runs

def test_ctrl_c_stops_the_whole_sweep_and_it_continues_later(tmp_path):
    proc = popen("sweep.py", "--name", "s", "--output-dir", tmp_path, *SWEEP)
    first = tmp_path / "s" / "adam" / "lr_0.001" / "seed_0"
    wait_for(lambda: has_epoch(first, 1), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "sweep.py" in err and "--name s" in err
    plan = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert "best_lr" not in plan
    assert not (tmp_path / "s" / "results.md").exists()
    assert not (tmp_path / "s" / "adam" / "lr_0.01").exists()        # nothing after the interrupted run
    done = run_script("sweep.py", "--name", "s", "--output-dir", tmp_path, *SWEEP)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["best_lr"]["adam"] in (0.001, 0.01)


def test_a_run_that_fails_is_named_and_nothing_is_picked(tmp_path):
    """A planned run whose checkpoint is unreadable fails; the sweep says which, exits non-zero and
    writes no picks and no report."""
    args = ["--name", "s", "--output-dir", tmp_path, *FAST_SWEEP]
    broken = tmp_path / "s" / "adam" / "lr_0.01" / "seed_0"
    assert run_script("train.py", *TINY, "--workload", "mnist-logreg", "--epochs", "1", "--output-dir", broken.parent,
                      "--run-name", "seed_0").returncode == 0
    (broken / "checkpoint.pt").write_bytes(b"damaged")
    metrics = records.load_metrics(broken)
    metrics["status"] = "interrupted"
    records.save_metrics(metrics, broken)
    proc = run_script("sweep.py", *args)
    assert proc.returncode != 0
    assert "lr_0.01/seed_0" in proc.stderr and "Traceback" not in proc.stderr
    plan = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert "best_lr" not in plan and not (tmp_path / "s" / "results.md").exists()


def test_every_planned_run_is_checked_before_the_first_trains(tmp_path):
    proc = run_script("sweep.py", "--name", "s", "--output-dir", tmp_path, *FAST_SWEEP, "--optimizers", "adam", "sgd",
                      "--eps", "1e-3")
    assert_one_line_error(proc, "--eps does not apply to optimizer 'sgd'")
    assert not list(tmp_path.rglob("config.json"))


@pytest.mark.parametrize("lrs", ["1e-3,nan", "0:1:3", "1e-3,inf", "-1e-3"])
def test_bad_learning_rate_grids_are_refused_before_anything_is_written(tmp_path, lrs):
    proc = run_script("sweep.py", "--name", "s", "--output-dir", tmp_path, *FAST_SWEEP, f"--lrs={lrs}")
    assert_one_line_error(proc, "--lrs")
    assert not (tmp_path / "s").exists()


def test_changing_only_the_threads_does_not_block_a_resume(tmp_path):
    args = ["--name", "s", "--output-dir", tmp_path, *FAST_SWEEP, "--lrs", "1e-3", "--seeds", "0", "1", "--epochs", "1",
            "--no-report"]
    assert run_script("sweep.py", *args).returncode == 0
    before = {d: (records.load_metrics(d), (d / records.CHECKPOINT).read_bytes()) for d in records.find_runs([tmp_path])}
    again = run_script("sweep.py", *args, "--threads", "2", "--epochs", "1")
    assert again.returncode == 0, again.stderr
    assert "1 run(s): 1 already finished, 0 trained" in again.stdout, again.stdout       # each stage: nothing retrained
    assert len(before) == 2 and {d: (records.load_metrics(d), (d / records.CHECKPOINT).read_bytes())
                                 for d in records.find_runs([tmp_path])} == before


# ---------------------------------------------------------------- 2. one run folder, one run

def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    first = popen("train.py", *TINY, "--limit-train", "1024", "--epochs", "3", "--output-dir", tmp_path,
                  "--run-name", "r")
    wait_for(lambda: (tmp_path / "r" / "config.json").exists(), first)
    second = run_script("train.py", *TINY, "--epochs", "1", "--seed", "5", "--output-dir", tmp_path,
                        "--run-name", "r", "--overwrite")
    assert_one_line_error(second, "in use by another process")
    first.communicate(timeout=300)
    assert first.returncode == 0
    config, metrics = records.load_run(tmp_path / "r")
    assert config["args"]["seed"] == 0 and metrics["epoch"] == [0, 1, 2, 3]


def test_an_interrupted_overwrite_never_leaves_a_mixture(train_run, monkeypatch):
    from optstudy.training import loop

    _, run_dir = train_run(epochs=1)
    old_config, old_metrics = records.load_run(run_dir)

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(loop, "evaluate", interrupted)
    assert train_run("--overwrite", "--seed", "7", epochs=1)[0] == 130      # a second Ctrl-C: stop at once
    monkeypatch.undo()
    # Stopped during the new run's epoch 0: its config.json alone is in the folder, which no reader
    # takes for a run (never new settings beside old metrics), and the old run is aside, whole.
    assert records.find_runs([run_dir.parent]) == []
    assert records.load_config(run_dir / records.CONFIG)["args"]["seed"] == 7
    assert records.load_run(run_dir / records.REPLACED) == (old_config, old_metrics)
    code, _ = train_run("--overwrite", "--seed", "7", epochs=1)
    assert code == 0 and records.load_run(run_dir)[0]["args"]["seed"] == 7


def test_a_reader_refuses_files_of_two_runs(train_run, tmp_path):
    _, a = train_run(name="a", epochs=1)
    _, b = train_run("--seed", "1", name="b", epochs=1)
    (a / "config.json").write_text((b / "config.json").read_text())
    proc = run_script("plot.py", tmp_path / "out", "--out", tmp_path / "fig")
    assert_one_line_error(proc, "different runs")


def test_resume_with_fewer_epochs_changes_nothing(train_run, capsys):
    _, run_dir = train_run(epochs=2)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    code, _ = train_run("--resume", epochs=1)
    assert code == 2 and "already has 2 epochs" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_raising_epochs_on_resume_updates_the_config(train_run):
    _, run_dir = train_run(epochs=1)
    assert train_run("--resume", epochs=2)[0] == 0
    assert json.loads((run_dir / "config.json").read_text())["args"]["epochs"] == 2


# ---------------------------------------------------------------- 3. records read by analysis run no code

class Hostile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def hand_sweep(where):
    """A finished sweep of two optimizers made by hand (tests/test_report_values.py's records)."""
    from test_report_values import write_run
    records.save_json({"name": where.name, "optimizers": ["a", "b"], "seeds": [0], "epochs": 2, "select": "val_acc",
                       "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
                       "best": {"a": {"lr": 0.1}, "b": {"lr": 0.1}}}, (where.mkdir(parents=True), where)[1] / "sweep.json")
    for opt in ("a", "b"):
        write_run(where, opt, 0.1, 0, 90.0, 0.3)
    return where


# Every reader of records, on a sweep (or a baseline folder) one of whose runs has only a hostile
# metrics.pkl: {reader: its arguments, given (the sweep, a good sweep beside it, a folder to write)}.
READERS_OF_RECORDS = {
    "plot.py": lambda bad, good, out: ["plot.py", bad, "--out", out],
    "report.py": lambda bad, good, out: ["report.py", bad],
    "export.py": lambda bad, good, out: ["export.py", bad, "--csv", out / "runs.csv"],
    "baselines.py collect": lambda bad, good, out: ["baselines.py", "collect", bad, "--into", out / "baseline"],
    "report.py --baselines": lambda bad, good, out: ["report.py", good, "--baselines", bad],
    "plot.py --baselines": lambda bad, good, out: ["plot.py", good, "--baselines", bad, "--out", out],
}


@pytest.mark.parametrize("reader", READERS_OF_RECORDS)
def test_a_hostile_pickle_is_never_unpickled_by_any_reader_of_records(tmp_path, reader):
    bad, good = hand_sweep(tmp_path / "bad"), hand_sweep(tmp_path / "good")
    victim = records.sweep_run_dir(bad, "b", {"lr": 0.1}, 0)
    (victim / "metrics.json").unlink()
    evidence = tmp_path / "pwned"
    (victim / "metrics.pkl").write_bytes(pickle.dumps(Hostile(str(evidence))))
    script, *args = READERS_OF_RECORDS[reader](bad, good, tmp_path / "out")
    assert_one_line_error(run_in_process(script, *args), "a pickle, and loading a pickle can run code", "--trust-pickles")
    assert not evidence.exists()


def test_the_safe_form_is_written_with_every_save_and_read_by_the_plot(train_run, tmp_path):
    _, run_dir = train_run(epochs=1)
    assert json.loads((run_dir / "metrics.json").read_text())["epoch"] == [0, 1]
    (run_dir / "metrics.pkl").write_bytes(b"not even a pickle")     # never read
    proc = run_script("plot.py", tmp_path / "out", "--out", tmp_path / "fig")
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- 4. every bad input: one line, non-zero

BAD_TRAIN = [
    (["--seed", str(2 ** 64)], "--seed"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-1e-3"], "--lr: '-1e-3' is not a positive number"),
    (["--weight-decay", "inf"], "--weight-decay"),
    (["--eps", "inf"], "--eps"),
    (["--dropout-rate", "nan"], "--dropout-rate"),
]


@pytest.mark.parametrize("args, fragment", BAD_TRAIN)
def test_bad_train_arguments(tmp_path, args, fragment):
    proc = run_in_process("train.py", *TINY, "--epochs", "1", "--output-dir", tmp_path, *args)
    assert_one_line_error(proc, fragment)
    assert not list(tmp_path.rglob("metrics.*"))


def test_bad_records_and_paths_are_one_line(train_run, tmp_path):
    _, run_dir = train_run(epochs=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        ("plot.py", [tmp_path / "out", "--out", blocker], "--out"),
        ("report.py", [tmp_path / "nosweep", "--smooth", "0"], "--smooth"),
        ("report.py", [tmp_path / "nosweep", "--target", "nan"], "--target"),
        ("sweep.py", ["--name", "", *SWEEP], "--name"),
        ("sweep.py", ["--name", "../x", *SWEEP], "--name"),
        ("benchmark.py", ["--tiny", "--json", blocker / "x.json"], "--json"),
    ]
    for script, args, fragment in cases:
        assert_one_line_error(run_in_process(script, *args), fragment)
    (run_dir / "config.json").write_text("[1, 2]")
    assert_one_line_error(run_in_process("plot.py", tmp_path / "out", "--out", tmp_path / "fig"), "config.json")
    assert_one_line_error(run_script("train.py", *TINY, "--epochs", "2", "--output-dir", tmp_path / "out",
                                     "--run-name", "run", "--resume"), "config.json")


def test_a_checkpoint_of_another_shape_is_one_line(train_run, tmp_path):
    import torch

    _, run_dir = train_run(epochs=1)
    torch.save({"something": "else"}, run_dir / "checkpoint.pt")
    proc = run_script("train.py", *TINY, "--epochs", "2", "--output-dir", tmp_path / "out", "--run-name", "run",
                      "--resume")
    assert_one_line_error(proc, "checkpoint.pt")


def test_a_dangling_symlink_in_an_image_folder_is_one_line(tmp_path):
    from test_data import write_tree

    root = write_tree(tmp_path / "tree", size=32)
    os.symlink(tmp_path / "nowhere.png", root / "train" / "cat" / "link.png")
    proc = run_script("train.py", "--data-dir", root, "--epochs", "1", "--output-dir", tmp_path / "o",
                      "--data-root", tmp_path / "d", "--quiet")
    assert_one_line_error(proc, "link.png")


def test_run_sh_checks_every_optimizer_name_before_training(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "o"))
    proc = subprocess.run(["sh", "run.sh", "--quick", "adam", "adamz"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "adamz" in proc.stderr
    assert "training adam" not in proc.stdout
