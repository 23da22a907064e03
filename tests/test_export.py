"""Results to build on: tidy CSV of every run and epoch, LaTeX tables, curves against steps and
seconds, and win rates, all from saved records."""
import csv

import pytest

import export

from optstudy.analysis import export as exporting
import plot
from optstudy.analysis import plotting
from optstudy.records import store as records
from optstudy.analysis import stats
from optstudy.core.cli import run_main
from conftest import assert_one_line_error, run_script


@pytest.fixture
def two_runs(train_run):
    for opt in ("adam", "sgd"):
        code, run_dir = train_run("--workload", "mnist-logreg", "--optimizer", opt, "--lr", "1e-2", name=opt, epochs=2)
        assert code == 0
    return run_dir.parent


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_tidy_csv_has_a_row_per_run_and_epoch_and_a_column_per_setting_and_metric(two_runs, tmp_path):
    assert run_main(export.main, [str(two_runs), "--csv", str(tmp_path / "runs.csv")]) == 0
    rows = read(tmp_path / "runs.csv")
    assert len(rows) == 2 * 3                                       # 2 runs x epochs 0, 1, 2
    for column in ("run", "optimizer", "lr", "seed", "workload", "epoch", "step", "train_loss", "test_acc",
                   "epoch_seconds", "elapsed_seconds", "status", "batched"):
        assert column in rows[0], column
    for row in rows:
        metrics = records.load_metrics(row["run"])
        i = metrics["epoch"].index(int(row["epoch"]))
        assert float(row["train_loss"]) == pytest.approx(metrics["train_loss"][i], rel=1e-12)
        assert int(row["step"]) == int(row["epoch"]) * metrics["iters_per_epoch"]
        assert float(row["elapsed_seconds"]) == pytest.approx(sum(metrics["seconds"][:i + 1]))
    assert {row["optimizer"] for row in rows} == {"adam", "sgd"}


def test_latex_escapes_and_keeps_the_table():
    table = exporting.latex_table([{"optimizer": "paper_adam", "final_val_acc": "92.5 ± 0.1", "note": "5% & {x}"}],
                               caption="lr_sweep")
    assert "\\begin{tabular}{lll}" in table and "optimizer & final\\_val\\_acc & note \\\\" in table
    assert "paper\\_adam & 92.5 $\\pm$ 0.1 & 5\\% \\& \\{x\\} \\\\" in table and "\\caption{lr\\_sweep}" in table


def test_export_needs_something_to_write(two_runs):
    assert_one_line_error(run_script("export.py", two_runs), "give --csv PATH")
    assert_one_line_error(run_script("export.py", two_runs, "--latex", "x.tex"), "no results.csv")


@pytest.mark.parametrize("x", ["step", "time"])
def test_curves_against_steps_and_seconds(two_runs, tmp_path, x):
    assert run_main(plot.main, [str(two_runs), "--out", str(tmp_path), "--x", x]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 5000
    metrics = records.load_metrics(two_runs / "adam")
    expected = ([e * metrics["iters_per_epoch"] for e in metrics["epoch"]] if x == "step"
                else [sum(metrics["seconds"][:i + 1]) for i in range(len(metrics["epoch"]))])
    assert plotting.x_values(metrics, x).tolist() == pytest.approx(expected)


def test_win_rates_worked_by_hand():
    # Lower is better. Workload 1: a beats b on seed 0, loses on seed 1; workload 2: a beats b; c only there.
    workloads = [{"a": {0: 1.0, 1: 3.0}, "b": {0: 2.0, 1: 2.0}},
                 {"a": {0: 0.5}, "b": {0: 0.7}, "c": {0: 0.5}}]
    wins = stats.win_rates(workloads, ["a", "b", "c"])
    assert wins[("a", "b")] == (2 / 3, 3) and wins[("b", "a")] == (1 / 3, 3)
    assert wins[("a", "c")] == (0.5, 1)                   # a tie counts half
    assert wins[("c", "b")] == (1.0, 1) and ("a", "a") not in wins
