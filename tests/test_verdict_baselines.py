"""A sweep reported with --baselines: its picks judged against each comparable baseline pick, by
value. Records made by hand with known per-seed numbers (a user sweep and a shipped baseline sweep),
through the real report: a verdict with the wrong winner, size, interval or seed count, one that
let a picking seed judge, one against a baseline whose seeds mean something else, a budget that
hid a pick at its grid's edge, or seconds set beside another machine's would each fail here."""
import uuid

import pytest

from optstudy.analysis import plotting, report
from optstudy.records import meaning, store

MACHINE = {"type": "cpu", "name": "AMD EPYC", "threads": 1, "cpu": {"capability": "AVX2"}}
OTHER_MACHINE = {"type": "cpu", "name": "Intel Xeon", "threads": 2, "cpu": {"capability": "AVX512"}}


def write_run(sweep_dir, opt, setting, seed, val_acc, test_acc, workload="mnist-logreg", device=MACHINE,
              parameters=7850, status="complete"):
    """A two-epoch record: epoch 0 untrained (10%), then the given final accuracies at epoch 2."""
    run_dir = store.sweep_run_dir(sweep_dir, opt, setting, seed)
    run_dir.mkdir(parents=True)
    run_id = uuid.uuid4().hex
    args = {"workload": workload, "optimizer": opt, "seed": seed, "epochs": 2, "val_split": 0.1, "batch_size": 128,
            **setting}
    store.save_json({"run_id": run_id, "args": args, "argv": [], "command": "python src/train.py",
                     "workload": {"name": workload, "objective": "classify", "target": ["val_acc", 91.0]},
                     "optimizer": {"name": opt, "hyperparameters": dict(setting)},
                     "data": {"source": f"mnist:/somewhere/{sweep_dir.name}", "train_size": 54000, "val_size": 6000,
                              "test_size": 10000},
                     "model": {"name": "logreg", "parameters": parameters}, "device": device}, run_dir / store.CONFIG)
    metrics = {"epoch": [0, 1, 2], "train_loss": [2.3, 1.0, 0.3], "val_loss": [2.3, 1.0, 0.5],
               "val_acc": [10.0, val_acc - 1, val_acc], "test_loss": [2.3, 1.0, 0.5],
               "test_acc": [10.0, test_acc - 1, test_acc], "train_acc": [10.0, 50.0, 60.0],
               "seconds": [0.0, 1.0, 1.5], "lr": [setting["lr"]] * 3, "iter_loss": [2.0, 1.0, 0.5, 0.4],
               "iters_per_epoch": 2, "status": status, "diverged": None, "run_id": run_id}
    store.save_metrics(metrics, run_dir)


def write_sweep(folder, opt, settings, pick, seeds, per_seed, **run):
    """A sweep of one optimizer: every setting on the first seed (the stage-1 trials), the pick on
    every seed with per_seed[seed] = (val_acc, test_acc); the other trials worse."""
    plan = {"name": folder.name, "optimizers": [opt], "seeds": seeds, "epochs": 2, "select": "val_acc",
            "weight_decay": 0.0001, "val_split": 0.1, "train_args": [], "command": f"python src/sweep.py --name {folder.name}",
            "settings": {opt: settings}, "best": {opt: pick}}
    if all(set(s) == {"lr"} for s in settings):
        plan["lrs"] = [s["lr"] for s in settings]
        del plan["settings"]
    else:
        plan.update(trials=len(settings), sampler_seed=0, space={opt: {"lr": [1e-4, 1.0, "log"], "beta1": [0.5, 0.999, "log1m"]}})
    folder.mkdir(parents=True)
    store.save_json(plan, folder / meaning.PLAN)
    for seed in seeds:
        write_run(folder, opt, pick, seed, *per_seed[seed], **run)
    for setting in settings:
        if setting != pick:
            write_run(folder, opt, setting, seeds[0], 80.0, 80.0, **run)
    return folder


# The user's optimizer, seeds 0-3; the baseline's Adam, seeds 0-4. Seed 0 picked both sides' settings.
MINE = {0: (99.0, 99.0), 1: (93.0, 90.0), 2: (93.5, 91.0), 3: (94.0, 92.0)}
ADAM = {0: (50.0, 50.0), 1: (92.0, 91.0), 2: (92.0, 91.0), 3: (92.0, 91.0), 4: (10.0, 10.0)}
USER = "elsewhere/signum.py:Signum"


@pytest.fixture
def sweeps(tmp_path):
    mine = write_sweep(tmp_path / "mine", USER, [{"lr": 1e-3}, {"lr": 1e-2}], {"lr": 1e-2}, [0, 1, 2, 3], MINE)
    shipped = tmp_path / "shipped"
    write_sweep(shipped / "search", "adam", [{"lr": 1e-3, "beta1": 0.99}, {"lr": 1e-2, "beta1": 0.9},
                                             {"lr": 1e-1, "beta1": 0.5}],
                {"lr": 1e-2, "beta1": 0.9}, [0, 1, 2, 3, 4], ADAM, device=OTHER_MACHINE)
    return mine, shipped


def section(sweep_dir, heading):
    text = (sweep_dir / "results.md").read_text()
    return [line for line in text.split(f"\n## {heading}")[1].split("\n## ")[0].splitlines()[1:] if line]


def test_a_pick_gets_paired_verdicts_against_each_baseline_pick_by_value(sweeps):
    mine, shipped = sweeps
    assert report.report([mine], baselines=shipped) == 0
    lines = section(mine, "Verdicts against the baselines")
    # Seeds both ran: 0-3; seed 0 picked on both sides and is left out (there the user wins by 49).
    # Validation: 93 - 92, 93.5 - 92, 94 - 92 = 1, 1.5, 2: mean 1.5, sd 0.5, t(0.975, 2) = 4.302653
    # -> 1.5 +- 4.302653 * 0.5 / sqrt(3) = 1.5 +- 1.242 = +0.258 .. +2.74 (scipy.stats.ttest_rel's interval)
    val = next(line for line in lines if "final validation accuracy" in line)
    assert val == (f"- {USER} beats adam (baseline) on final validation accuracy by 1.5 points "
                   f"({USER} - adam (baseline) = +1.5; 95% CI +0.258 to +2.74 points, 3 paired seeds)."), val
    # Test: 90 - 91, 91 - 91, 92 - 91 = -1, 0, 1: mean 0, within the noise (+-2.48)
    test = next(line for line in lines if "final test accuracy" in line)
    assert "the difference (+0 points; 95% CI -2.48 to +2.48 points, 3 paired seeds) is within the noise" in test, test
    head = next(line for line in lines if line.startswith("- Against adam (baseline)"))
    assert "seeds both ran 0, 1, 2, 3; seed 0 picked the settings (on both sides)" in head, head
    assert lines[-1].startswith("- 2 95% intervals"), lines[-1]


def test_each_sides_budget_is_said_with_a_pick_at_the_edge(sweeps):
    mine, shipped = sweeps
    report.report([mine], baselines=shipped)
    budget = section(mine, "Against the baselines: what each side was given")
    assert budget[0].startswith(f"- {USER}: 2 setting(s) tried by seed 0 (a grid over 1 dimension: lr 0.001, 0.01)")
    assert "4 seed(s) at the pick; its pick (lr=0.01) is at the edge of the tried lr values" in budget[0]
    assert budget[1].startswith("- adam (baseline): 3 setting(s) tried by seed 0 (a quasi-random (Sobol) search "
                                "over 2 dimension(s)")
    assert "5 seed(s) at the pick; its pick (lr=0.01, beta1=0.9) is inside the tried range" in budget[1]
    assert "The budgets differ" in budget[2]


def test_seconds_of_another_machine_are_not_set_beside_the_sweeps(sweeps):
    mine, shipped = sweeps
    report.report([mine], baselines=shipped)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in (mine / "results.md").read_text().splitlines()
            if line.startswith(f"| {USER}") or line.startswith("| adam (baseline)")}
    assert "| 1.25 |" in rows[USER] and "AMD EPYC (AVX2), 1 thread(s), one run at a time" in rows[USER]
    assert "not compared (1.25 s, timed otherwise than this sweep" in rows["adam (baseline)"]
    assert "Intel Xeon (AVX512), 2 thread(s)" in rows["adam (baseline)"]


def test_a_baseline_whose_seeds_mean_something_else_gets_no_verdict(tmp_path):
    mine = write_sweep(tmp_path / "mine", USER, [{"lr": 1e-2}], {"lr": 1e-2}, [0, 1, 2, 3], MINE)
    shipped = write_sweep(tmp_path / "shipped", "adam", [{"lr": 1e-2}], {"lr": 1e-2}, [0, 1, 2, 3, 4], ADAM,
                          parameters=101770)       # another model: seed 1 is another initialisation
    report.report([mine], baselines=shipped)
    lines = section(mine, "Verdicts against the baselines")
    assert lines == ["- adam (baseline): no paired verdict; its seeds do not mean the same as this sweep's "
                     "(model ('logreg', 101770) (runs: ('logreg', 7850)))."], lines


def test_the_figures_draw_the_baseline_beside_the_sweep_in_colours_of_their_own(sweeps, monkeypatch):
    mine, shipped = sweeps
    figures, save = {}, plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path, **kw: (figures.update({path.name: fig}), save(fig, path, **kw))[1])
    report.report([mine], baselines=shipped)
    for name in ("curves.png", "lr_sensitivity.png", "tuning_curves.png"):
        lines = [line for line in figures[name].axes[0].get_lines() if not line.get_label().startswith("_")]
        labels = {line.get_label(): line.get_color() for line in lines}
        assert any(label.startswith("Signum") for label in labels), (name, labels)       # the class, not the path
        assert any(label.startswith("adam (baseline)") for label in labels), (name, labels)
        assert len(set(labels.values())) == len(labels), (name, labels)
        adam = next(c for label, c in labels.items() if label.startswith("adam"))
        assert adam == "tab:blue" and "tab:blue" not in [c for label, c in labels.items() if label.startswith("Signum")]
    # the sensitivity plot draws the baseline's 3 trials of its picking seed, not the picks of every seed
    sensitivity = next(line for line in figures["lr_sensitivity.png"].axes[0].get_lines()
                       if line.get_label() == "adam (baseline)")
    assert sorted(sensitivity.get_xdata()) == [1e-3, 1e-2, 1e-1]


def test_regenerate_prints_a_command_without_the_machines_paths_or_repeated_flags(capsys):
    """The shipped mnist-logreg-search plan recorded /work/main/... paths and --select twice."""
    import baselines
    from optstudy.core.cli import run_main
    from optstudy.core.provenance import REPO

    assert run_main(baselines.main, ["regenerate", str(REPO / "baselines" / "mnist-logreg-search"), "--dry-run"]) == 0
    (command,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("python src/sweep.py")]
    flags = [arg for arg in command.split() if arg.startswith("--")]
    assert len(flags) == len(set(flags)), command
    assert "/work/" not in command and "--data-root" not in command, command
    assert "--output-dir outputs/baselines/mnist-logreg-search" in command and "--select val_acc" in command
