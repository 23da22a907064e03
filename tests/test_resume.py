"""Nothing lost: kill, Ctrl-C, SIGTERM, a crash mid-save, divergence and bad resumes."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from optstudy.records import store as records
from conftest import REPO, TINY, assert_one_line_error, comparable, run_script

# The MLP with dropout (so its random state must resume too), epochs long enough (32 steps, about
# half a second here) that a signal lands mid-epoch; a tenth of the CNN's time.
ARGS = [*TINY, "--workload", "mnist-mlp", "--limit-train", "2048", "--epochs", "4"]


def start(out, *extra):
    return subprocess.Popen([sys.executable, str(REPO / "src" / "train.py"), *ARGS, "--output-dir", str(out),
                             "--run-name", "r", *map(str, extra)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_epoch(run_dir, epoch, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if records.load_metrics(run_dir)["epoch"][-1] >= epoch:
                return
        except Exception:
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise TimeoutError


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run to compare against."""
    out = tmp_path_factory.mktemp("ref")
    proc = start(out)
    proc.communicate(timeout=300)
    assert proc.returncode == 0
    return records.load_metrics(out / "r")


def resume(out):
    return subprocess.run([sys.executable, str(REPO / "src" / "train.py"), *ARGS, "--output-dir", str(out),
                           "--run-name", "r", "--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, reference):
    proc = start(tmp_path)
    wait_for_epoch(tmp_path / "r", 1, proc)
    time.sleep(0.15)                                  # somewhere inside epoch 2
    proc.kill()
    proc.wait()
    killed_at = records.load_metrics(tmp_path / "r")["epoch"][-1]
    assert killed_at < 4
    done = resume(tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"resuming from epoch {killed_at}" in done.stdout
    assert comparable(records.load_metrics(tmp_path / "r")) == comparable(reference)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_keep_the_last_epoch_and_say_how_to_resume(tmp_path, reference, signum, code):
    proc = start(tmp_path)
    wait_for_epoch(tmp_path / "r", 1, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Resume with:" in err and "--resume" in err and "Traceback" not in err
    metrics = records.load_metrics(tmp_path / "r")
    assert metrics["status"] == "interrupted" and 1 <= metrics["epoch"][-1] < 4
    assert resume(tmp_path).returncode == 0
    assert comparable(records.load_metrics(tmp_path / "r")) == comparable(reference, status="complete")


def test_crash_while_saving_leaves_the_previous_epoch_readable(train_run, monkeypatch):
    from optstudy.training import loop

    real_save, calls = torch.save, []

    def dies_halfway(obj, path):
        calls.append(path)
        if len(calls) == 3:                           # the checkpoint after epoch 2
            real_save(obj, path)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            raise OSError(28, "No space left on device")
        real_save(obj, path)
    monkeypatch.setattr(loop.torch, "save", dies_halfway)
    with pytest.raises(OSError):
        train_run(epochs=3)
    monkeypatch.undo()
    run_dir = calls[0].parent
    assert records.load_metrics(run_dir)["epoch"] == [0, 1]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p for p in run_dir.iterdir() if "tmp" in p.name]
    code, _ = train_run("--resume", epochs=3)
    assert code == 0 and records.load_metrics(run_dir)["epoch"] == [0, 1, 2, 3]


def test_divergence_stops_and_is_recorded(tmp_path):
    proc = run_script("train.py", *TINY, "--optimizer", "sgd", "--lr", "1e4", "--epochs", "3",
                      "--output-dir", tmp_path, "--run-name", "d")
    assert proc.returncode == 3, proc.stderr
    assert "diverged" in proc.stderr and "Traceback" not in proc.stderr
    metrics = records.load_metrics(tmp_path / "d")
    assert metrics["status"] == "diverged"
    assert metrics["diverged"]["epoch"] == 1 and metrics["diverged"]["step"] >= 1
    assert metrics["epoch"] == [0]                   # no made-up points after the divergence
    assert not torch.isfinite(torch.tensor(metrics["iter_loss"][-1]))
    assert len(metrics["iter_loss"]) == metrics["diverged"]["step"]
    plot = run_script("plot.py", tmp_path, "--out", tmp_path)
    assert plot.returncode == 0 and "diverged at epoch 1" in plot.stdout


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    proc = run_script("train.py", *TINY, "--epochs", "1", "--output-dir", tmp_path, "--resume")
    assert_one_line_error(proc, "nothing to resume")


def test_resume_after_a_kill_before_the_first_checkpoint_starts_the_run(train_run, capsys):
    """Killed during the epoch-0 evaluation: config.json is written, metrics and checkpoint are not."""
    _, run_dir = train_run(epochs=1)
    for name in (records.METRICS, records.METRICS_JSON, records.CHECKPOINT):
        (run_dir / name).unlink()
    assert [p.name for p in run_dir.iterdir() if not p.name.startswith(".")] == [records.CONFIG]
    code, _ = train_run("--resume", epochs=1)
    assert code == 0, capsys.readouterr().err
    assert records.load_metrics(run_dir)["epoch"] == [0, 1] and (run_dir / records.CHECKPOINT).is_file()


def test_resume_of_an_empty_folder_is_refused(train_run, capsys):
    _, run_dir = train_run(epochs=1)
    for p in run_dir.iterdir():
        p.unlink()
    code, _ = train_run("--resume", epochs=1)
    err = capsys.readouterr().err
    assert code == 2 and "nothing to resume" in err and len(err.strip().splitlines()) == 1
    assert not any(run_dir.iterdir())


def test_resume_with_other_settings_names_them(train_run, capsys):
    _, run_dir = train_run(epochs=1)
    before = (run_dir / "metrics.pkl").read_bytes()
    code, _ = train_run("--resume", "--lr", "0.01", "--batch-size", "32", epochs=2)
    err = capsys.readouterr().err
    assert code == 2 and "batch_size: 64 -> 32" in err and "lr: None -> 0.01" in err
    assert (run_dir / "metrics.pkl").read_bytes() == before


def test_resume_may_extend_the_epochs(train_run):
    _, run_dir = train_run(epochs=1)
    code, _ = train_run("--resume", epochs=2)
    assert code == 0 and records.load_metrics(run_dir)["epoch"] == [0, 1, 2]


def test_unwritable_output_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_script("train.py", *TINY, "--epochs", "1", "--output-dir", blocker / "sub")
    assert_one_line_error(proc, "cannot write to")
