"""Shipped baselines: compact records drawn beside a user's runs where comparable, refused or
flagged where not."""
import json
import shutil

import pytest

import baselines

from optstudy.analysis import baselines as shipped
import plot
from optstudy.analysis import plotting
from optstudy.records import store as records
from optstudy.core.cli import run_main
from conftest import REPO, comparable


@pytest.fixture
def made(train_run, tmp_path):
    for opt in ("adam", "sgd"):
        assert train_run("--workload", "mnist-logreg", "--optimizer", opt, "--lr", "1e-2", name=opt, epochs=2)[0] == 0
    out = tmp_path / "out"
    assert shipped.collect([str(out)], tmp_path / "baselines") == 2
    return out, tmp_path / "baselines"


def test_compact_records_keep_the_epochs_and_drop_the_minibatch_losses(made):
    out, shipped = made
    full, compact = records.load_run(out / "adam"), records.load_run(shipped / "adam")
    assert compact[0] == full[0] and compact[1]["train_loss"] == full[1]["train_loss"]
    assert compact[1]["iter_loss"] == [] and compact[1]["compact"] and not (shipped / "adam" / records.CHECKPOINT).exists()


def test_comparable_baselines_are_drawn_and_the_others_said_in_one_line(made, train_run, tmp_path, capsys):
    out, shipped = made
    assert train_run("--workload", "mnist-logreg", "--optimizer", "adagrad", "--lr", "1e-2", name="mine", epochs=2)[0] == 0
    mine = out / "mine"
    assert run_main(plot.main, [str(mine), "--out", str(tmp_path / "fig"), "--baselines", str(shipped)]) == 0
    printed = capsys.readouterr().out
    assert "2 curve(s)" not in printed and "3 curve(s)" in printed          # adagrad + the two baselines
    # A baseline of another length is left out; one made with another torch version is flagged.
    config = json.loads((shipped / "sgd" / "config.json").read_text())
    config["args"]["epochs"] = 45
    (shipped / "sgd" / "config.json").write_text(json.dumps(config))
    config = json.loads((shipped / "adam" / "config.json").read_text())
    config["versions"]["torch"] = "1.0.0"
    (shipped / "adam" / "config.json").write_text(json.dumps(config))
    groups = plotting.baseline_groups(shipped, records.load_run(mine)[0])
    printed = capsys.readouterr().out
    assert list(groups) == ["adam (baseline)"]
    assert "1 baseline run(s) left out, not comparable: epochs 45 (runs: 2)" in printed
    assert "drawn though made with another torch version 1.0.0" in printed


def test_the_shipped_baselines_are_small_safe_and_readable():
    folder = REPO / "baselines"
    runs = records.find_runs([folder])
    assert len(runs) >= 60 and not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pt"))
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 3 * 2**20
    for run in runs[:5]:
        config, metrics = records.load_run(run)
        assert metrics["status"] == "complete" and metrics["compact"] and config["workload"]["name"]
    for run in runs:                  # every run beside the plan and command of the sweep that made it
        assert any((up / "sweep.json").is_file() for up in run.parents if up != folder.parent), run


def test_a_sweeps_report_and_page_set_its_picks_beside_comparable_baselines(tmp_path, capsys):
    import report
    import sweep
    tiny = ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "256", "--limit-val", "64",
            "--batch-size", "64", "--threads", "1", "--epochs", "2", "--lrs", "1e-2,1e-1", "--seeds", "0", "1",
            "--no-report", "--output-dir", str(tmp_path)]
    assert run_main(sweep.main, ["--name", "theirs", "--optimizers", "adam", *tiny]) == 0
    shipped.collect([str(tmp_path / "theirs")], tmp_path / "shipped")
    assert records.load_json(tmp_path / "shipped" / "sweep.json")["optimizers"] == ["adam"]
    assert run_main(sweep.main, ["--name", "mine", "--optimizers", "sgd", *tiny]) == 0
    assert run_main(report.main, [str(tmp_path / "mine"), "--baselines", str(tmp_path / "shipped"),
                                  "--html", str(tmp_path / "page.html")]) == 0
    table = (tmp_path / "mine" / "results.md").read_text()
    assert "| sgd |" in table and "| adam (baseline) |" in table
    assert "adam (baseline)" in (tmp_path / "page.html").read_text()
    # A folder of sweeps (as baselines/figure1): each optimizer's picks once, two sweeps of one never mixed
    assert run_main(sweep.main, ["--name", "theirs2", "--optimizers", "adam", *tiny, "--lrs", "3e-2"]) == 0
    for name in ("theirs", "theirs2"):
        shipped.collect([str(tmp_path / name)], tmp_path / "set" / name)
    assert run_main(report.main, [str(tmp_path / "mine"), "--baselines", str(tmp_path / "set")]) == 0
    table = (tmp_path / "mine" / "results.md").read_text()
    assert "| adam, theirs (baseline) | 0.1 |" in table and "| adam, theirs2 (baseline) | 0.03 |" in table
    capsys.readouterr()
    longer = [("3" if tiny[i - 1] == "--epochs" else a) for i, a in enumerate(tiny)]
    other = ["--name", "longer", "--optimizers", "sgd", *longer]
    assert run_main(sweep.main, other) == 0
    assert run_main(report.main, [str(tmp_path / "longer"), "--baselines", str(tmp_path / "shipped")]) == 0
    assert "left out, not comparable: epochs 2 (runs: 3)" in capsys.readouterr().out
    assert "(baseline)" not in (tmp_path / "longer" / "results.md").read_text()


def test_a_baseline_regenerates_from_its_recorded_command_to_the_same_numbers(tmp_path, capsys):
    import sweep
    argv = ["--name", "base", "--optimizers", "adam", "--workload", "mnist-logreg", "--dataset", "synthetic",
            "--limit-train", "256", "--limit-val", "64", "--batch-size", "64", "--threads", "1", "--epochs", "2",
            "--lrs", "1e-2,1e-1", "--seeds", "0", "--no-report", "--output-dir", str(tmp_path / "made")]
    assert run_main(sweep.main, argv) == 0
    shipped.collect([str(tmp_path / "made" / "base")], tmp_path / "shipped" / "base")
    before = {r.relative_to(tmp_path): comparable(m) for r, _, m in shipped.load(tmp_path / "shipped")}
    assert run_main(baselines.main, ["regenerate", str(tmp_path / "shipped"), "--dry-run"]) == 0
    assert "2 run(s); they trained for" in capsys.readouterr().out and not (tmp_path / "again").exists()
    for run, _, _ in shipped.load(tmp_path / "shipped"):      # only the plans stay: the records come back
        shutil.rmtree(run)
    assert run_main(baselines.main, ["regenerate", str(tmp_path / "shipped"), "--output-dir", str(tmp_path / "again")]) == 0
    assert records.has_metrics(tmp_path / "again" / "shipped" / "base" / "adam" / "lr_0.1" / "seed_0")
    assert {r.relative_to(tmp_path): comparable(m) for r, _, m in shipped.load(tmp_path / "shipped")} == before


def test_a_plan_older_than_the_validation_split_regenerates_without_one(capsys):
    """The shipped figure baselines were swept before --val-split existed (no split held out): their
    recorded command, run today, would hold out 10%. regenerate pins the plan's settings."""
    assert run_main(baselines.main, ["regenerate", str(REPO / "baselines" / "figure1" / "mnist-adam"), "--dry-run"]) == 0
    command = capsys.readouterr().out.splitlines()[-1]
    assert command.startswith("python src/sweep.py --name mnist-adam") and "--val-split 0 " in command
    assert "--select train_loss" in command and "--epochs 45" in command
