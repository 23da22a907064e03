"""The user's own optimizer, from a file or an import path, with --opt: train, resume, sweep, plot,
report and benchmark take it like a registry name; every mistake is one line."""
import hashlib
import shutil

import pytest

from optstudy.training import optimizers
from optstudy.records import store as records
import sweep
import train
from optstudy.core.cli import run_main
from conftest import REPO, TINY, comparable

LION = str(REPO / "examples" / "lion.py") + ":Lion"


def train_main(*argv):
    return run_main(train.main, [*TINY, *map(str, argv)])


def test_an_optimizer_from_a_file_trains_and_names_its_source(train_run):
    code, run_dir = train_run("--optimizer", LION, "--lr", "1e-3", "--opt", "betas=(0.8, 0.95)", epochs=2)
    assert code == 0
    config = records.load_json(run_dir / "config.json")
    opt = config["optimizer"]
    assert opt["name"] == LION and opt["class"].endswith(".Lion")
    assert opt["sha256"] == hashlib.sha256((REPO / "examples" / "lion.py").read_bytes()).hexdigest()
    assert opt["hyperparameters"] == {"lr": 1e-3, "betas": [0.8, 0.95], "weight_decay": 0.0}
    metrics = records.load_metrics(run_dir)
    assert metrics["status"] == "complete" and metrics["train_loss"][-1] < metrics["train_loss"][0]


def test_a_module_path_and_opt_reach_the_constructor(train_run):
    code, run_dir = train_run("--optimizer", "torch.optim:NAdam", "--opt", "momentum_decay=0.008",
                              "--opt", "decoupled_weight_decay=True", epochs=1)
    assert code == 0
    opt = records.load_json(run_dir / "config.json")["optimizer"]
    assert opt["class"] == "torch.optim.nadam.NAdam" and opt["package"] == "torch" and opt["version"]
    assert opt["hyperparameters"]["momentum_decay"] == 0.008 and opt["hyperparameters"]["decoupled_weight_decay"]


def test_opt_sets_a_builtin_optimizers_fixed_settings(train_run):
    code, run_dir = train_run("--optimizer", "sgd", "--opt", "momentum=0.5", epochs=1)
    assert code == 0
    assert records.load_json(run_dir / "config.json")["optimizer"]["hyperparameters"]["momentum"] == 0.5


def test_resume_is_bit_identical_and_refuses_a_changed_source(tmp_path, train_run):
    lion = tmp_path / "my_lion.py"
    shutil.copy(REPO / "examples" / "lion.py", lion)
    _, whole = train_run("--optimizer", f"{lion}:Lion", name="whole", epochs=3)
    train_run("--optimizer", f"{lion}:Lion", name="half", epochs=1)
    code, half = train_run("--optimizer", f"{lion}:Lion", "--resume", name="half", epochs=3)
    assert code == 0
    assert comparable(records.load_metrics(half)) == comparable(records.load_metrics(whole))
    lion.write_text(lion.read_text() + "\n# edited\n")
    code, _ = train_run("--optimizer", f"{lion}:Lion", "--resume", name="half", epochs=4)
    assert code == 2


@pytest.mark.parametrize("argv, fragment", [
    (["--optimizer", "nosuch.py:Lion"], "no file nosuch.py"),
    (["--optimizer", "examples/lion.py:Nope"], "has no 'Nope'"),
    (["--optimizer", "torch.nn:Linear"], "is not a torch.optim.Optimizer subclass"),
    (["--optimizer", "no_such_package_x:Opt"], "importing no_such_package_x failed: ModuleNotFoundError"),
    (["--optimizer", "torch.optim:LBFGS"], "requires a closure"),
    (["--optimizer", "adam", "--opt", "nosuch=1"], "--opt nosuch: Adam takes no such argument"),
    (["--optimizer", "adam", "--opt", "betas=(0.9,"], "is not a Python literal"),
    (["--optimizer", "adam", "--opt", "amsgrad"], "give KEY=VALUE"),
    (["--optimizer", "adam", "--opt", "lr=-1.0"], "refused its settings: Invalid learning rate"),
    (["--optimizer", "examples/lion.py:Lion", "--eps", "1e-3"], "--eps does not apply"),
])
def test_every_bad_optimizer_argument_is_one_line(tmp_path, capsys, argv, fragment):
    code = train_main(*argv, "--output-dir", tmp_path, "--epochs", "1")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert not any(tmp_path.iterdir()) or fragment.startswith("refused")      # refused before anything is kept


def test_a_user_optimizer_runs_through_sweep_report_and_plot(tmp_path, capsys):
    import plot
    from optstudy.analysis import plotting
    code = sweep.main(["--name", "s", "--output-dir", str(tmp_path), "--optimizers", "adam", LION,
                       "--lrs", "1e-3,1e-2", "--seeds", "0", "--epochs", "1", *TINY])
    assert code == 0
    folder = records.optimizer_folder(LION)
    assert "/" not in folder and (tmp_path / "s" / folder / "lr_0.001" / "seed_0" / "config.json").exists()
    assert f"| {LION} |" in (tmp_path / "s" / "results.md").read_text()
    assert plot.main([str(tmp_path / "s"), "--out", str(tmp_path / "fig")]) == 0
    labels = plotting.group_runs(plotting.load_runs([tmp_path / "s"]))
    assert any(label.startswith(LION) for label in labels)


def test_the_benchmark_takes_a_user_optimizer(capsys):
    import benchmark
    assert benchmark.main(["--workload", "mnist-logreg", "--tiny", "--optimizer", LION, "--steps", "2",
                           "--warmup", "1", "--rounds", "1", "--threads", "1"]) == 0
    assert f"with {LION} on" in capsys.readouterr().out


def test_list_optimizers_shows_the_users_row(capsys):
    assert train_main("--optimizer", LION, "--list-optimizers") == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith(LION) and "lr=0.0001" in row and optimizers.is_external(LION)
