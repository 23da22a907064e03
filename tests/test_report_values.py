"""The report's conclusions checked by their values: records made by hand with known per-seed
numbers, through the real report. A verdict that named the wrong winner, a loss read as higher-is-
better, a tuning curve drawn the wrong way or without its diverged trials, or a win rate on the
best epoch instead of the last would each fail here."""
import uuid

import pytest

from optstudy.analysis import report
from optstudy.records import meaning, store

A_SEED_VAL = {0: 80.0, 1: 92.0, 2: 92.5, 3: 93.0}      # a's pick: final validation accuracy per seed
B_SEED_VAL = {0: 90.0, 1: 90.0, 2: 90.0, 3: 90.0}      # seed 0 picked the settings: b wins there, by far
A_SEED_LOSS = {0: 0.50, 1: 0.30, 2: 0.31, 3: 0.32}
B_SEED_LOSS = {0: 0.10, 1: 0.40, 2: 0.42, 3: 0.41}


def write_run(sweep_dir, opt, lr, seed, val_acc, train_loss, status="complete", untrained_acc=10.0, best_acc=None):
    """A two-epoch record: epoch 0 untrained, then the given final values (best_acc at epoch 1)."""
    run_dir = store.sweep_run_dir(sweep_dir, opt, {"lr": lr}, seed)
    run_dir.mkdir(parents=True)
    run_id = uuid.uuid4().hex
    args = {"workload": "mnist-logreg", "optimizer": opt, "lr": lr, "seed": seed, "epochs": 2, "val_split": 0.1}
    store.save_json({"run_id": run_id, "args": args, "argv": [], "command": "python src/train.py",
                     "workload": {"name": "mnist-logreg", "objective": "classify", "target": ["val_acc", 91.0]},
                     "optimizer": {"name": opt, "hyperparameters": {"lr": lr}}}, run_dir / store.CONFIG)
    acc = [untrained_acc, best_acc if best_acc is not None else val_acc, val_acc]
    metrics = {"epoch": [0, 1, 2], "train_loss": [2.3, 1.0, train_loss], "val_loss": [2.3, 1.0, 0.5],
               "val_acc": acc, "test_loss": [2.3, 1.0, 0.5], "test_acc": acc, "train_acc": acc,
               "seconds": [0.0, 1.0, 1.5], "lr": [lr] * 3, "iter_loss": [2.0, 1.0, 0.5, 0.4], "iters_per_epoch": 2,
               "status": status, "diverged": {"epoch": 2, "step": 4} if status == "diverged" else None, "run_id": run_id}
    if status == "diverged":
        metrics["train_loss"][-1] = float("inf")
    store.save_metrics(metrics, run_dir)


@pytest.fixture
def sweep_dir(tmp_path):
    d = tmp_path / "hand"
    plan = {"name": "hand", "optimizers": ["a", "b"], "seeds": [0, 1, 2, 3], "epochs": 2, "select": "val_acc",
            "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.01, 0.1], "train_args": [],
            "command": "python src/sweep.py --name hand", "best": {"a": {"lr": 0.1}, "b": {"lr": 0.01}}}
    d.mkdir()
    store.save_json(plan, d / meaning.PLAN)
    for seed in plan["seeds"]:
        write_run(d, "a", 0.1, seed, A_SEED_VAL[seed], A_SEED_LOSS[seed])
        write_run(d, "b", 0.01, seed, B_SEED_VAL[seed], B_SEED_LOSS[seed])
    write_run(d, "a", 0.01, 0, 85.0, 0.9)                        # a's other trial
    write_run(d, "b", 0.1, 0, 0.0, 0.0, status="diverged", untrained_acc=5.0)   # b's other trial diverged
    return d


def verdicts(sweep_dir):
    return [line for line in (sweep_dir / "results.md").read_text().splitlines() if line.startswith("- ")]


def test_verdicts_name_the_winner_its_size_and_interval_on_the_seeds_that_did_not_pick(sweep_dir):
    assert report.report([sweep_dir]) == 0
    lines = verdicts(sweep_dir)
    # Seeds 1-3: a - b = 2, 2.5, 3 points; mean 2.5, sd 0.5, t(0.975, 2) = 4.302653 -> 2.5 +- 1.242
    val = next(line for line in lines if "final validation accuracy" in line)
    assert val.startswith("- a beats b on final validation accuracy by 2.5 points"), val
    assert "CI +1.26 to +3.74 points, 3 paired seeds" in val, val
    test = next(line for line in lines if "final test accuracy" in line)     # the records' test_acc = val_acc
    assert test.startswith("- a beats b on final test accuracy by 2.5 points") and "CI +1.26 to +3.74" in test, test
    # Train loss, lower is better: a - b = -0.1, -0.11, -0.09: a wins (seed 0, where b wins by 0.4, is left out)
    loss = next(line for line in lines if "final training loss" in line)
    assert loss.startswith("- a beats b on final training loss by 0.1 "), loss
    assert "3 paired seeds" in loss
    assert any("intervals" in line for line in lines), lines          # the note on how many were made


def test_the_tuning_curves_are_dodges_with_the_diverged_trial_as_the_untrained_model(sweep_dir):
    plan = meaning.load_plan(sweep_dir)
    curves = report.tuning_curves(meaning.collect(sweep_dir, plan), plan)
    # a's seed-0 trials: best val acc 80 (lr 0.1) and 85 (lr 0.01); k = 1: 82.5; k = 2: 80/4 + 85*3/4 = 83.75
    assert curves["a"].mean == pytest.approx([82.5, 83.75]) and curves["a"].p_diverged == [0.0, 0.0]
    # b's: 90, and a diverged trial valued as the worst untrained model of b's trials (5%, not 10%):
    # k = 1: 47.5; k = 2: 5/4 + 90*3/4 = 68.75
    assert curves["b"].mean == pytest.approx([47.5, 68.75])
    assert curves["b"].p_diverged == pytest.approx([0.5, 0.25]) and curves["b"].diverged == 1


def test_the_win_rate_compares_the_last_epoch_not_the_best(tmp_path):
    d = tmp_path / "last"
    plan = {"name": "last", "optimizers": ["a", "b"], "seeds": [0, 1], "epochs": 2, "select": "val_acc",
            "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
            "best": {"a": {"lr": 0.1}, "b": {"lr": 0.1}}}
    d.mkdir()
    store.save_json(plan, d / meaning.PLAN)
    for seed in (0, 1):
        write_run(d, "a", 0.1, seed, 90.0, 0.3, best_acc=99.0)   # best at epoch 1, worse at the end
        write_run(d, "b", 0.1, seed, 95.0, 0.3)
    scores = report.final_scores(d)
    assert scores == {"a": {0: -90.0, 1: -90.0}, "b": {0: -95.0, 1: -95.0}}


def as_plan(sweep_dir, **changes):
    """The hand sweep's plan with some entries changed (saved back)."""
    plan = {**meaning.load_plan(sweep_dir), **changes}
    store.save_json(plan, sweep_dir / meaning.PLAN)
    return plan


def test_the_tuning_curves_on_the_train_loss_go_down(sweep_dir):
    plan = as_plan(sweep_dir, select="train_loss")
    curves = report.tuning_curves(meaning.collect(sweep_dir, plan), plan)
    # a's seed-0 final losses 0.5 (lr 0.1) and 0.9 (lr 0.01): k = 1: 0.7; k = 2: 0.5*3/4 + 0.9/4 = 0.6
    assert curves["a"].mean == pytest.approx([0.7, 0.6])
    # b's 0.1, and the diverged trial valued at the untrained loss 2.3: k = 1: 1.2; k = 2: 0.1*3/4 + 2.3/4 = 0.65
    assert curves["b"].mean == pytest.approx([1.2, 0.65]) and curves["b"].diverged == 1


@pytest.mark.parametrize("select, picks", [("val_acc", {"a": {"lr": 0.01}, "b": {"lr": 0.01}}),
                                           ("train_loss", {"a": {"lr": 0.1}, "b": {"lr": 0.01}})])
def test_the_picks_are_the_best_first_seed_trials_by_the_selection_rule(sweep_dir, capsys, select, picks):
    """a's trials: 80% / loss 0.5 at lr 0.1, 85% / 0.9 at lr 0.01; b's diverged trial never wins."""
    from optstudy.experiments import sweep as sweeping
    stage1 = [(opt, {"lr": lr}, 0) for opt in ("a", "b") for lr in (0.01, 0.1)]
    assert sweeping.pick_best(stage1, sweep_dir, select) == picks


def test_epochs_to_target_counts_accuracy_up_and_loss_down(sweep_dir):
    assert report.report([sweep_dir]) == 0
    rows = {row.split(" | ")[0].lstrip("| "): row for row in (sweep_dir / "results.md").read_text().splitlines()
            if row.startswith("| a |") or row.startswith("| b |")}
    # the workload's target, 91% validation accuracy: a's seeds 1-3 reach it at epoch 1, seed 0 (80%) never; b's
    # 90% never
    assert "| 1 (3/4 seeds) |" in rows["a"] and "| not reached (0/4) |" in rows["b"]
    metrics = {"epoch": [0, 1, 2], "train_loss": [2.3, 1.0, 0.5], "val_acc": [10.0, 80.0, 95.0]}
    assert report.epochs_to_target(metrics, ("train_loss", 0.8)) == 2
    assert report.epochs_to_target(metrics, ("val_acc", 80.0)) == 1


def drawn(monkeypatch, draw):
    """The figure a report function draws (its axes' data), captured as it is saved."""
    from optstudy.analysis import plotting
    figures, save = [], plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path, **kw: (figures.append(fig), save(fig, path, **kw))[1])
    draw()
    return figures[0]


def test_the_lr_sensitivity_figure_draws_each_trials_best_validation_accuracy(sweep_dir, tmp_path, monkeypatch):
    d = sweep_dir
    plan = meaning.load_plan(d)
    runs = meaning.collect(d, plan)
    sides = [(opt, plan, meaning.first_seed(runs, plan, opt)) for opt in plan["optimizers"]]
    fig = drawn(monkeypatch, lambda: report.plot_sensitivity(sides, plan, tmp_path / "s.png"))
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in fig.axes[0].lines}
    assert lines["a"] == ([0.01, 0.1], [85.0, 80.0])
    assert lines["b"] == ([0.01], [90.0]) and lines["b diverged"][0] == [0.1]


def test_the_lr_sensitivity_figure_draws_the_best_epoch_not_the_last(tmp_path, monkeypatch):
    d = tmp_path / "best"
    plan = {"name": "best", "optimizers": ["a"], "seeds": [0], "epochs": 2, "select": "val_acc",
            "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
            "best": {"a": {"lr": 0.1}}}
    d.mkdir()
    store.save_json(plan, d / meaning.PLAN)
    write_run(d, "a", 0.1, 0, 90.0, 0.3, best_acc=99.0)
    sides = [("a", plan, meaning.first_seed(meaning.collect(d, plan), plan, "a"))]
    fig = drawn(monkeypatch, lambda: report.plot_sensitivity(sides, plan, tmp_path / "s.png"))
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[99.0]]


def test_the_win_rate_on_the_train_loss_is_lower_is_better(tmp_path):
    d = tmp_path / "loss"
    plan = {"name": "loss", "optimizers": ["a", "b"], "seeds": [0, 1], "epochs": 2, "select": "train_loss",
            "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
            "best": {"a": {"lr": 0.1}, "b": {"lr": 0.1}}}
    d.mkdir()
    store.save_json(plan, d / meaning.PLAN)
    for seed in (0, 1):
        write_run(d, "a", 0.1, seed, 90.0, 0.2)
        write_run(d, "b", 0.1, seed, 90.0, 0.4)
    scores = report.final_scores(d)
    assert scores == {"a": {0: 0.2, 1: 0.2}, "b": {0: 0.4, 1: 0.4}}
    from optstudy.analysis import stats
    assert stats.win_rates([scores], ["a", "b"])[("a", "b")] == (1.0, 2)
