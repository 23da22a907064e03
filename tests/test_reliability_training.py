"""Bad, hostile and unusual input to a training run: one line, a non-zero exit, nothing written
where it should not be, and a record that says what ran (the second round of bad inputs)."""
import json
import shutil
import textwrap

import pytest
import torch

from conftest import TINY, assert_one_line_error, run_in_process
from optstudy.records import store as records

LOGREG = ["--workload", "mnist-logreg", *TINY]


def train(tmp_path, *argv, name="run", epochs=1):
    return run_in_process("train.py", *LOGREG, "--epochs", epochs, "--output-dir", tmp_path / "out",
                          "--run-name", name, "--data-root", tmp_path / "data", *argv)


def config_of(tmp_path, name="run"):
    return json.loads((tmp_path / "out" / name / records.CONFIG).read_text())


def test_an_explicit_opt_wins_over_the_workloads_default_weight_decay(tmp_path):
    assert train(tmp_path, "--opt", "weight_decay=0.001").returncode == 0        # mnist-logreg's L2 is 1e-4
    assert config_of(tmp_path)["optimizer"]["hyperparameters"]["weight_decay"] == 0.001


def test_a_flag_and_an_opt_that_agree_pass_and_that_disagree_are_one_line(tmp_path):
    assert train(tmp_path, "--lr", "0.01", "--opt", "lr=0.01").returncode == 0
    assert config_of(tmp_path)["optimizer"]["hyperparameters"]["lr"] == 0.01
    proc = train(tmp_path, "--lr", "0.01", "--opt", "lr=0.1", name="clash")
    assert_one_line_error(proc, "--opt lr=0.1 contradicts --lr 0.01")
    assert not (tmp_path / "out" / "clash").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--lr", "1e39"], "below 3.4e+38"),
    (["--weight-decay", "1e300"], "weight_decay=1e+300"),
    (["--eps", "1e39"], "eps=1e+39"),
    (["--opt", "lr=1e999"], "lr=inf"),
    (["--opt", "betas=0.9"], "give a tuple of numbers"),
    (["--opt", "x=" + "9" * 100_000], "at most 1000"),
    (["--opt", "foreach=True", "--opt", "fused=True"], "refused its settings: RuntimeError"),
    (["--run-name", "../escape"], "plain folder name"),
    (["--run-name", "."], "plain folder name"),
    (["--optimizer", "adagrad", "--stacked-step"], "Adagrad has no stacked form"),
])
def test_values_a_step_cannot_use_are_one_line_before_anything_is_written(tmp_path, argv, fragment):
    proc = run_in_process("train.py", *LOGREG, "--epochs", 1, "--output-dir", tmp_path / "out",
                          "--data-root", tmp_path / "data", *(argv if "--run-name" in argv else [*argv, "--run-name", "r"]))
    assert_one_line_error(proc, fragment)
    # no record (an optimizer's own refusal comes once its folder is held: the folder, empty, may stay)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name in records.RECORD]
    assert not (tmp_path / "escape").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith(".")]


def user_optimizer(tmp_path, body, import_line=""):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(f"""
        import sys
        import torch
        {import_line}

        class Mine(torch.optim.SGD):
            def __init__(self, params, lr=0.01):
                super().__init__(params, lr=lr)

            def step(self, closure=None):
                {body}
                return super().step(closure)
        """))
    return f"{path}:Mine"


def test_user_code_that_exits_at_import_is_a_failure(tmp_path):
    proc = train(tmp_path, "--optimizer", user_optimizer(tmp_path, "pass", "sys.exit(0)"))
    assert_one_line_error(proc, "importing", "SystemExit")
    assert not (tmp_path / "out" / "run").exists()


@pytest.mark.parametrize("body, what", [("sys.exit(0)", "SystemExit"), ("raise KeyboardInterrupt", "KeyboardInterrupt"),
                                        ("raise RuntimeError('boom')", "RuntimeError: boom")])
def test_user_code_that_exits_or_raises_in_step_fails_its_run_and_says_so(tmp_path, body, what):
    proc = train(tmp_path, "--optimizer", user_optimizer(tmp_path, body))
    assert_one_line_error(proc, "failed in step() during epoch 1", what)
    metrics = records.load_metrics(tmp_path / "out" / "run")
    assert metrics["status"] == "failed" and metrics["epoch"] == [0]          # epoch 0 kept, nothing else


def test_a_step_error_of_a_torch_optimizer_is_one_line(tmp_path):
    proc = train(tmp_path, "--optimizer", "torch.optim:SparseAdam", "--opt", "lr=0.01")
    assert_one_line_error(proc, "failed in step()", "SparseAdam")


def test_an_optimizer_state_that_resume_cannot_read_is_said_at_the_first_checkpoint(tmp_path):
    path = user_optimizer(tmp_path, "self.state[self.param_groups[0]['params'][0]]['note'] = object()")
    proc = train(tmp_path, "--optimizer", path, epochs=2)
    assert proc.returncode == 0
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--resume could not read" in warnings[0], proc.stderr


def test_resume_refuses_another_runs_checkpoint_in_the_folder(tmp_path):
    assert train(tmp_path, name="a").returncode == 0
    assert train(tmp_path, "--seed", "0", name="b").returncode == 0
    shutil.copy(tmp_path / "out" / "a" / records.CHECKPOINT, tmp_path / "out" / "b" / records.CHECKPOINT)
    before = (tmp_path / "out" / "b" / records.METRICS_JSON).read_bytes()
    proc = train(tmp_path, "--resume", name="b", epochs=2)
    assert_one_line_error(proc, "belong to different runs")
    assert (tmp_path / "out" / "b" / records.METRICS_JSON).read_bytes() == before


def test_resume_refuses_a_config_edited_after_the_run(tmp_path):
    assert train(tmp_path).returncode == 0
    path = tmp_path / "out" / "run" / records.CONFIG
    config = json.loads(path.read_text())
    config["args"]["lr"] = 0.5
    path.write_text(json.dumps(config))
    proc = train(tmp_path, "--resume", epochs=2)
    assert_one_line_error(proc, "config.json says other settings", "lr")
    assert records.load_metrics(tmp_path / "out" / "run")["epoch"] == [0, 1]
    assert torch.load(tmp_path / "out" / "run" / records.CHECKPOINT, weights_only=True)["epoch"] == 1
