"""The paper-figure commands end to end on tiny synthetic data: their sweeps, records and PNGs."""
import json
import math

import pytest

import figures
from conftest import drawn_lines

from optstudy.analysis import figures as figs
from optstudy.records import store as records
from optstudy.core.cli import UserError

# One epoch on 256 synthetic samples; two rates per grid so that every sweep really picks one.
TINY = ["--quick", "--dataset", "synthetic", "--limit-train", "256", "--limit-val", "128", "--threads", "1",
        "--grid-points", "2"]


def make_figure(number, out, *extra):
    return figures.main([str(number), *TINY, "--output-dir", str(out), *map(str, extra)])


def check_figure(number, folder, epochs, drawn, rates=2):
    """Every sweep of the figure has its grid of finished runs and a pick; the table exists; the
    figure draws every pick's training loss from epoch 1 as its record holds it (Figs. 1-2, one seed)
    or a line per sweep (Figs. 3-4)."""
    figure = figs.FIGURES[number]()
    table = (folder / f"figure{number}.md").read_text()
    lines = [(label, y) for label, x, y in drawn_lines(drawn[f"figure{number}.png"]) if x and not label.startswith("_")]
    for s in figure.sweeps:
        plan = json.loads((folder / s.name / "sweep.json").read_text())
        assert plan["epochs"] == epochs and len(plan["lrs"]) == rates and plan["select"] == "train_loss"
        for lr in plan["lrs"]:
            metrics = records.load_metrics(records.sweep_run_dir(folder / s.name, s.optimizer, lr, 0))
            assert metrics["epoch"][-1] == epochs or metrics["status"] == "diverged"
        assert f"| {s.panel} | {figs.NAMES[s.optimizer]} |" in table
        best = plan["best"][s.optimizer]
        if number in (1, 2) and best is not None:
            picked = records.load_metrics(records.sweep_run_dir(folder / s.name, s.optimizer, best["lr"], 0))
            assert any(label.startswith(f"{figs.NAMES[s.optimizer]} lr={best['lr']:.3g}") and
                       y == pytest.approx(picked["train_loss"][1:]) for label, y in lines), (s.name, lines)
    assert len(lines) >= len(figure.sweeps)
    return table


@pytest.mark.parametrize("number", [1, 2])
def test_epoch_figures_quick_on_synthetic_data(tmp_path, number, saved_figures):
    assert make_figure(number, tmp_path, "--epochs", "1") == 0
    table = check_figure(number, tmp_path / f"fig{number}-quick", epochs=1, drawn=saved_figures)
    assert "1 epochs (cut from the paper's " in table and "would take about" in table


@pytest.mark.slow          # six CNN runs: 40 s on the AVX2 CPU
def test_figure3_trains_each_optimizer_with_and_without_dropout(tmp_path, saved_figures):
    # standardised inputs here: a ZCA fit on 3072-pixel images costs more than this whole test
    assert make_figure(3, tmp_path, "--epochs", "1", "--preprocess", "standardize") == 0
    folder = tmp_path / "fig3-quick"
    check_figure(3, folder, epochs=1, drawn=saved_figures)
    dropouts = {records.load_json(d / "config.json")["args"]["dropout"] for d in records.find_runs([folder])}
    assert dropouts == {"paper", "none"}


def test_figure4_is_the_bias_correction_grid(tmp_path, saved_figures):
    assert make_figure(4, tmp_path, "--epochs", "2") == 0
    folder = tmp_path / "fig4-quick"
    check_figure(4, folder, epochs=2, drawn=saved_figures)
    seen = set()
    for d in records.find_runs([folder]):
        config = records.load_json(d / "config.json")
        hyper = config["optimizer"]["hyperparameters"]
        seen.add((*hyper["betas"], hyper["bias_correction"]))
    assert seen == {(b1, b2, bc) for b1 in (0.0, 0.9) for b2 in (0.99, 0.999, 0.9999) for bc in (True, False)}
    assert figs.fig4_rows(100) == [10, 100] and figs.fig4_rows(2) == [1, 2]


def test_the_drawing_reads_only_saved_records(tmp_path, monkeypatch):
    assert make_figure(1, tmp_path, "--epochs", "1", "--grid-points", "1") == 0
    folder = tmp_path / "fig1-quick"
    (folder / "figure1.png").unlink()
    from optstudy.experiments import figures as making
    from optstudy.training import setup

    def refuse(*args, **kwargs):
        raise AssertionError("--draw-only trained")
    monkeypatch.setattr(setup, "train_runs", refuse)
    monkeypatch.setattr(making, "sweep", refuse)
    png = tmp_path / "docs" / "f1.png"
    png.parent.mkdir()
    assert make_figure(1, tmp_path, "--epochs", "1", "--grid-points", "1", "--draw-only", "--png", png) == 0
    assert (folder / "figure1.png").exists() and png.read_bytes() == (folder / "figure1.png").read_bytes()


def test_a_figure_run_with_other_settings_is_refused_not_mixed(tmp_path):
    assert make_figure(2, tmp_path, "--epochs", "1", "--grid-points", "1") == 0
    with pytest.raises(UserError, match="give another --name"):
        make_figure(2, tmp_path, "--epochs", "2", "--grid-points", "1")
    with pytest.raises(UserError, match="no finished 3-epoch runs"):
        make_figure(2, tmp_path, "--epochs", "3", "--draw-only")


def fake_run(status, losses):
    return {"status": status, "train_loss": losses, "epoch": list(range(len(losses))), "seconds": [0.0] * len(losses)}


def test_diverged_rates_are_shown_never_dropped():
    s = figs.fig1().sweeps[0]
    curve = figs.Curve(s, grid={1e-2: fake_run("complete", [2.0, 0.5, 0.4]),
                                   1.0: fake_run("diverged", [2.0, math.nan])})
    curve.best_lr, curve.best = 1e-2, curve.grid[1e-2]
    assert curve.diverged == [1.0]
    assert curve.label() == "AdaGrad lr=0.01, at the grid's edge, 1/2 rates diverged"     # the lowest rate tried
    assert figs.loss_at(curve.grid[1.0], 1) is None and figs.loss_at(curve.grid[1e-2], 2) == 0.4
    assert figs.Curve(s, grid={1.0: curve.grid[1.0]}).label() == "AdaGrad: every rate diverged (1)"


def test_a_pick_at_the_grids_edge_is_said_and_an_interior_one_is_not():
    s = figs.fig1().sweeps[0]
    grid = {lr: fake_run("complete", [2.0, loss]) for lr, loss in ((1e-3, 0.5), (1e-2, 0.3), (1e-1, 0.4))}
    interior, top = figs.Curve(s, 1e-2, grid[1e-2], grid), figs.Curve(s, 1e-1, grid[1e-1], grid)
    assert not interior.at_edge and "edge" not in interior.label() and figs.pick_words(interior) == "0.01"
    assert top.at_edge and top.label() == "AdaGrad lr=0.1, at the grid's edge"
    assert figs.pick_words(top) == "0.1 (at the grid's edge)"


def test_grids_are_the_papers():
    fig4 = figs.fig4()
    assert [float(v) for v in fig4.sweeps[0].grid.spec().split(":")[:2]] == [1e-5, 1e-1]
    assert len(fig4.sweeps) == 12 and fig4.epochs == 100
    assert figs.Grid(1e-4, 1e-2, 5).spec(1) == "0.001"
    assert {s.optimizer for s in figs.fig2().sweeps} == {"adagrad", "rmsprop", "sgd", "adadelta", "adam"}
