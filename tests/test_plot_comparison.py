"""Figures that show a comparison, checked by the data drawn (the matplotlib lines, their labels and
colours), not by PNG size: every curve its own colour, fixed for the built-in optimizers and never a
built-in's for the user's own; short labels; one figure per workload; a baseline's picks only."""
import pytest

from optstudy.analysis import plotting
from optstudy.records import store
from optstudy.training import optimizers
from test_verdict_baselines import MINE, write_run, write_sweep

USER = "/tmp/elsewhere/signum.py:Signum"


def test_every_built_in_optimizer_has_a_fixed_colour_of_its_own():
    assert set(plotting.BUILTIN_COLORS) == set(optimizers.names())
    assert len(set(plotting.BUILTIN_COLORS.values())) == len(plotting.BUILTIN_COLORS)
    assert not set(plotting.SPARE_COLORS) & set(plotting.BUILTIN_COLORS.values())


def test_every_curve_of_a_figure_gets_its_own_colour_and_a_user_optimizer_never_a_used_one():
    labels = [USER, "adam", "adam (baseline)", "sgd (baseline)", "elsewhere/b.py:Other", "adam lr=0.1"]
    colours = plotting.curve_colors(labels)
    assert len(set(colours.values())) == len(labels), colours
    assert colours["adam"] == "tab:blue" and colours["sgd (baseline)"] == "tab:orange"
    for user in (USER, "elsewhere/b.py:Other"):
        assert colours[user] not in plotting.BUILTIN_COLORS.values(), colours
    # the hash of the name gave this one Adam's blue; now it takes the first spare colour
    assert plotting.curve_colors([USER, "adam (baseline)"])[USER] == plotting.SPARE_COLORS[0]


def test_labels_are_short_the_class_and_settings_to_3_digits():
    assert plotting.short_label(f"{USER} momentum=0.5740000000000001") == "Signum momentum=0.574"
    assert plotting.short_label("mypackage.optim:Fancy (baseline)") == "Fancy (baseline)"
    assert plotting.short_label("adam betas=0.9,0.99912345") == "adam betas=0.9,0.999"
    assert plotting.legend_labels(["a.py:Lion", "b.py:Lion"]) == {"a.py:Lion": "a.py:Lion", "b.py:Lion": "b.py:Lion"}


def record(folder, opt, hyper, workload="mnist-logreg", seed=0):
    """A run with only what plot.py reads: its config's args and hyperparameters, its metrics."""
    run_dir = folder / f"{opt.replace('/', '_').replace(':', '_')}_{workload}_{seed}"
    run_dir.mkdir(parents=True)
    store.save_json({"args": {"workload": workload, "optimizer": opt, "seed": seed, "epochs": 2},
                     "optimizer": {"name": opt, "hyperparameters": hyper}}, run_dir / store.CONFIG)
    store.save_metrics({"epoch": [0, 1, 2], "train_loss": [2.3, 1.0, 0.5], "test_loss": [2.3, 1.1, 0.6],
                        "test_acc": [10.0, 80.0, 90.0], "train_acc": [10.0, 80.0, 90.0], "iter_loss": [2.0, 1.0],
                        "seconds": [0.0, 1.0, 1.0], "iters_per_epoch": 1, "status": "complete", "diverged": None},
                       run_dir)


@pytest.fixture
def drawn(monkeypatch):
    """{figure file name: the figure} of every figure saved while the test runs."""
    figures, save = {}, plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path, **kw: (figures.update({path.name: fig}), save(fig, path, **kw))[1])
    return figures


def curves(fig):
    return {line.get_label(): line.get_color() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}


def test_no_betas_none_in_a_label_of_an_optimizer_without_betas(tmp_path, drawn):
    record(tmp_path, "adam", {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8})
    record(tmp_path, "sgd", {"lr": 0.5740000000000001})
    record(tmp_path, USER, {"lr": 1e-3})
    assert plotting.plot([tmp_path], out=tmp_path / "fig") == 0
    labels = curves(drawn["curves.png"])
    assert sorted(labels) == ["Signum lr=0.001", "adam lr=0.001", "sgd lr=0.574"], labels
    assert len(set(labels.values())) == 3 and labels["adam lr=0.001"] == "tab:blue"


def test_runs_of_several_workloads_make_one_figure_each(tmp_path, drawn):
    record(tmp_path, "adam", {"lr": 1e-3}, workload="mnist-logreg")
    record(tmp_path, "sgd", {"lr": 1e-3}, workload="mnist-logreg")
    record(tmp_path, "adam", {"lr": 1e-3}, workload="imdb-bow-logreg")
    assert plotting.plot([tmp_path], out=tmp_path / "fig") == 0
    assert set(drawn) == {"curves-mnist-logreg.png", "iterations-mnist-logreg.png",
                          "curves-imdb-bow-logreg.png", "iterations-imdb-bow-logreg.png"}
    assert sorted(curves(drawn["curves-mnist-logreg.png"])) == ["adam", "sgd"]
    assert sorted(curves(drawn["curves-imdb-bow-logreg.png"])) == ["adam"]


def test_with_baselines_only_the_baselines_picks_are_drawn(tmp_path, drawn):
    shipped = write_sweep(tmp_path / "shipped", "adam", [{"lr": 1e-3}, {"lr": 1e-2}, {"lr": 1e-1}], {"lr": 1e-2},
                          [0, 1, 2, 3], MINE)
    write_run(tmp_path / "mine", USER, {"lr": 1e-3}, 0, 90.0, 90.0)
    mine = next((tmp_path / "mine").rglob("config.json")).parent
    assert plotting.plot([mine], out=tmp_path / "fig", baselines=shipped) == 0
    labels = curves(drawn["curves.png"])
    # 3 trials on seed 0 and the pick on 4 seeds: one curve, the pick's mean over its 4 seeds
    assert sorted(labels) == ["Signum", "adam (baseline) (mean, min-max of 4 seeds)"], labels
    assert len(set(labels.values())) == 2
