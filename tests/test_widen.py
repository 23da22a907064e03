"""A pick at its grid's edge is never silent: sweep.py --widen tries rates beyond the end while the
pick sits there; more seeds may be added to a finished sweep; the paper figures run each panel at
the paper's length with seeds, drawn as a mean and a band, with paired verdicts in their numbers."""
import json
import math

import pytest

from conftest import run_in_process
from optstudy.analysis import figures as figs
from optstudy.core.cli import UserError
from optstudy.experiments import sweep as sweeping
from optstudy.records import meaning

TINY = ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "256", "--batch-size", "64",
        "--threads", "1", "--quiet", "--epochs", "2", "--val-split", "0", "--no-report"]


def run_sweep(out, *extra):
    done = run_in_process("sweep.py", "--name", "w", "--output-dir", out, *TINY, *map(str, extra))
    return done.returncode, done.stdout, done.stderr


def plan_of(out):
    return json.loads((out / "w" / "sweep.json").read_text())


def test_rate_beyond_steps_past_the_end_the_pick_sits_at_and_stops_at_the_bound():
    stage1 = [("adam", {"lr": lr}, 0) for lr in (1e-3, 1e-2, 1e-1)]
    plan = {"lrs": [1e-3, 1e-2, 1e-1], "widened": {}}
    assert sweeping.rate_beyond(stage1, "adam", 1e-2, plan, 3) is None            # interior
    assert sweeping.rate_beyond(stage1, "adam", 1e-1, plan, 3) == 1.0             # one grid step up
    assert sweeping.rate_beyond(stage1, "adam", 1e-3, plan, 3) == 1e-4            # one step down
    assert sweeping.rate_beyond(stage1, "adam", 1e-1, plan, 0) is None            # --widen 0: never
    plan["widened"] = {"adam": [1.0]}
    grown = [*stage1, ("adam", {"lr": 1.0}, 0)]
    assert sweeping.rate_beyond(grown, "adam", 1.0, plan, 1) is None              # the top's one is spent
    assert sweeping.rate_beyond(grown, "adam", 1e-3, plan, 1) == 1e-4             # the bottom's is not
    assert sweeping.rate_beyond([("adam", {"lr": 1e-2}, 0)], "adam", 1e-2, plan, 3) is None   # one rate: no step


def test_widen_trains_past_the_edge_until_the_pick_is_interior_and_a_rerun_trains_nothing(tmp_path):
    code, out, err = run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-4:1e-3:2", "--widen", "3", "--seeds", "0")
    assert code == 0, err
    plan = plan_of(tmp_path)
    # both grid rates are far too small for 2 epochs: 1e-2 beats the top, 1e-1 beats 1e-2, 1 does not
    # (final train losses 1.76, 0.068, 0.0116, 0.084): the pick 0.1 is interior, one rate short of the bound
    assert plan["widened"] == {"adam": [0.01, 0.1, 1.0]} and plan["best"] == {"adam": {"lr": 0.1}}
    assert "the pick 0.001 is an end of its grid; --widen tries 0.01" in out
    for lr in ("0.01", "0.1", "1"):
        assert json.loads((tmp_path / "w" / "adam" / f"lr_{lr}" / "seed_0" / "metrics.json").read_text())["epoch"][-1] == 2
    code, out, err = run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-4:1e-3:2", "--widen", "3", "--seeds", "0")
    assert code == 0 and "0 trained" in out and "--widen tries" not in out


def test_a_pick_still_at_the_edge_after_the_bound_is_left_there(tmp_path):
    code, _, err = run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-5:1e-4:2", "--widen", "1", "--seeds", "0")
    assert code == 0, err
    plan = plan_of(tmp_path)
    assert plan["widened"] == {"adam": [0.001]} and plan["best"] == {"adam": {"lr": 0.001}}   # the new top
    rates = sorted(s["lr"] for s in meaning.planned_settings(plan)["adam"])
    assert rates == [1e-5, 1e-4, 1e-3]


def test_more_seeds_extend_a_finished_sweep_and_fewer_are_refused(tmp_path):
    assert run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "0")[0] == 0
    code, out, err = run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "0", "1")
    assert code == 0 and "1 run(s): 0 already finished, 1 trained" in out, err
    assert plan_of(tmp_path)["seeds"] == [0, 1]
    code, _, err = run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "1", "0")
    assert code == 2 and "other settings (seeds)" in err
    assert run_sweep(tmp_path, "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "0")[0] == 2


def test_widen_is_refused_with_a_search():
    with pytest.raises(UserError, match="--widen extends a --lrs grid"):
        sweeping.run_sweep(["--name", "x", "--trials", "4", "--widen", "1", *TINY])


def run(status, losses):
    return {"status": status, "train_loss": losses, "epoch": list(range(len(losses))), "seconds": [0.0] * len(losses)}


def test_figure1_runs_each_panel_at_the_papers_length_and_a_cut_applies_to_all():
    figure = figs.fig1()
    lengths = {s.panel: figure.length(s) for s in figure.sweeps}
    assert lengths == {"MNIST": 45, figs.IMDB: 160} and figure.seeds == 3
    assert {figure.length(s, 5) for s in figure.sweeps} == {5}
    assert figure.y_range[figs.IMDB] == (0.20, 0.50) and figs.fig4().seeds == 1


def test_a_curve_is_the_mean_and_range_of_its_seeds_and_a_diverged_epoch_is_left_out():
    c = figs.Curve(figs.fig1().sweeps[0], 0.1, None, {}, seeds={0: run("complete", [2.0, 1.0, 0.5]),
                                                             1: run("complete", [2.0, 3.0, 0.7]),
                                                             2: run("diverged", [2.0, math.nan])})
    c.best = c.seeds[0]
    epochs, mean, low, high = figs.seed_band(c, "train_loss")
    assert list(epochs) == [0, 1, 2] and mean.tolist() == [2.0, 2.0, 0.6]
    assert low.tolist() == [2.0, 1.0, 0.5] and high.tolist() == [2.0, 3.0, 0.7]


def test_the_numbers_give_each_pairs_paired_verdict_by_value():
    s_a, s_b = figs.fig1().sweeps[0], figs.fig1().sweeps[2]          # AdaGrad and Adam on MNIST
    lower = {seed: run("complete", [2.0, 0.5 + d, 0.30 + d, 0.20 + d]) for seed, d in enumerate((0.0, 0.02, 0.01))}
    higher = {seed: run("complete", [2.0, 0.6 + d, 0.35 + d, 0.25 + d]) for seed, d in enumerate((0.0, 0.03, 0.0))}
    curves = [figs.Curve(s_a, 0.1, lower[0], {0.1: lower[0]}, seeds=lower, epochs=3),
              figs.Curve(s_b, 0.01, higher[0], {0.01: higher[0]}, seeds=higher, epochs=3)]
    lines = figs.verdict_lines(curves)
    at_end = [line for line in lines if "epoch 3" in line]
    # by hand: d = -0.05, -0.06, -0.04; mean -0.05, sd 0.01, t(0.975, 2) = 4.303: -0.05 +- 0.0248
    assert at_end == ["- AdaGrad beats Adam on training cost at epoch 3 by 0.05 (AdaGrad - Adam = -0.05; "
                      "95% CI -0.0748 to -0.0252, 3 paired seeds)."]
    assert any("epoch 1" in line for line in lines) and "intervals, none corrected" in lines[-1]
    flipped = figs.verdict_lines(curves[::-1])
    assert [line for line in flipped if "epoch 3" in line][0].startswith("- AdaGrad beats Adam")


def test_figure1_quick_with_seeds_draws_bands_and_widens(tmp_path):
    import figures
    assert figures.main(["1", "--quick", "--dataset", "synthetic", "--limit-train", "256", "--limit-test", "128",
                         "--threads", "1", "--grid-points", "2", "--epochs", "1", "--seeds", "2", "--widen", "1",
                         "--output-dir", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "fig1-quick"
    plan = json.loads((folder / "mnist-adam" / "sweep.json").read_text())
    assert plan["seeds"] == [0, 1] and plan["widen"] == 1
    curves = figs.read_figure(figs.fig1(), folder, 1)
    assert all(len(c.seeds) == 2 for c in curves if c.best is not None)
    table = (folder / "figure1.md").read_text()
    assert "Paired verdicts, MNIST" in table and "| 2 |" in table
