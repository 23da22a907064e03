"""Every guard reached alone: each case here breaks exactly one rule, so that disabling that one
guard (and no other) fails its case. The sweep's own guards (a run that reports success but leaves
a short or interrupted record is never picked from; a shorter run already in a planned folder is
trained on, never picked) through a real tiny sweep; each reader's record check through the one
loader of each kind of file (store.load_metrics, store.load_config, store.load_run,
meaning.load_plan), each case naming the check's own words."""
import json
from dataclasses import replace

import pytest

from optstudy.core.cli import UserError
from optstudy.records import meaning, store
from optstudy.training import setup
from conftest import assert_one_line_error, run_in_process

LOGREG = ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "128", "--limit-val", "64",
          "--batch-size", "64", "--threads", "1"]


def sweep_argv(tmp_path, epochs):
    return ["--name", "s", "--optimizers", "adam", "--lrs", "1e-2,1e-1", "--seeds", "0", "--epochs", str(epochs),
            *LOGREG, "--no-report", "--output-dir", tmp_path, "--data-root", tmp_path / "data"]


# ---------------------------------------------------------------- the sweep never picks from an unfinished run

def short_run(train_runs):
    """Trains one epoch of the planned two, then reports success."""
    return lambda configs, **kw: train_runs([replace(c, epochs=1) for c in configs], **kw)


def interrupted_run(train_runs):
    """Trains the planned epochs, then leaves the record marked interrupted, and reports success."""
    def run(configs, **kw):
        code = train_runs(configs, **kw)
        for c in configs:
            run_dir = f"{c.output_dir}/{c.run_name}"
            metrics = store.load_metrics(run_dir)
            store.save_metrics({**metrics, "status": "interrupted"}, run_dir)
        return code
    return run


@pytest.mark.parametrize("fake, state", [(short_run, "has 1 epochs, the plan 2"), (interrupted_run, "is interrupted")])
def test_a_run_that_reports_success_but_is_unfinished_is_never_picked_from(tmp_path, monkeypatch, fake, state):
    """Only the check after the stage (run_stage) stands between such a run and the picks: the run
    said it succeeded, and nothing else looks at its record before pick_best reads it."""
    monkeypatch.setattr(setup, "train_runs", fake(setup.train_runs))
    proc = run_in_process("sweep.py", *sweep_argv(tmp_path, 2))
    assert_one_line_error(proc, "2 planned run(s) are not finished", state, "no picks or report were written")
    plan = json.loads((tmp_path / "s" / meaning.PLAN).read_text())
    assert "best" not in plan and "best_lr" not in plan


def test_a_shorter_run_in_a_planned_folder_is_trained_on_to_the_plans_length_not_picked(tmp_path, capsys):
    """A planned folder already holding a complete run of fewer epochs (here: a one-epoch sweep whose
    plan was removed) is not finished: the sweep continues it to the planned length, then picks."""
    assert run_in_process("sweep.py", *sweep_argv(tmp_path, 1)).returncode == 0
    runs = [store.sweep_run_dir(tmp_path / "s", "adam", {"lr": lr}, 0) for lr in (0.01, 0.1)]
    assert all(store.load_metrics(d)["epoch"] == [0, 1] for d in runs)
    (tmp_path / "s" / meaning.PLAN).unlink()
    proc = run_in_process("sweep.py", *sweep_argv(tmp_path, 2))
    assert proc.returncode == 0, proc.stderr
    assert "2 run(s): 0 already finished, 2 trained" in proc.stdout
    for d in runs:
        metrics = store.load_metrics(d)
        assert metrics["epoch"] == [0, 1, 2] and metrics["status"] == "complete"
    assert json.loads((tmp_path / "s" / meaning.PLAN).read_text())["best"]["adam"]["lr"] in (0.01, 0.1)


def test_the_report_leaves_out_a_run_of_another_length_than_planned(tmp_path, capsys):
    """The epoch-length check on the reading side: a complete one-epoch run at a pick of a two-epoch
    plan makes no value (its row rests on the other seed only)."""
    from optstudy.analysis import report
    from test_report_values import write_run

    d = tmp_path / "len"
    d.mkdir()
    store.save_json({"name": "len", "optimizers": ["a"], "seeds": [0, 1], "epochs": 2, "select": "val_acc",
                     "weight_decay": 0.0, "val_split": 0.1, "lrs": [0.1], "train_args": [], "command": "x",
                     "best": {"a": {"lr": 0.1}}}, d / meaning.PLAN)
    write_run(d, "a", 0.1, 0, 90.0, 0.3)
    write_run(d, "a", 0.1, 1, 50.0, 2.0)
    short = store.sweep_run_dir(d, "a", {"lr": 0.1}, 1)
    metrics = store.load_metrics(short)
    store.save_metrics({k: v[:2] if isinstance(v, list) and len(v) == 3 else v for k, v in metrics.items()}, short)
    assert report.report([d]) == 0
    assert "1 unfinished run(s) left out" in capsys.readouterr().out
    table = (d / "results.md").read_text()
    assert "| 90 ± 0 |" in table and "1 of 2 finished" in table      # with the short run: 70 ± 28


# ---------------------------------------------------------------- each reader's record check, alone

def good_metrics():
    return {"epoch": [0, 1], "train_loss": [2.3, 0.5], "test_loss": [2.3, 0.6], "test_acc": [10.0, 90.0],
            "seconds": [0.0, 1.0], "lr": [0.1, 0.1], "iter_loss": [1.0, 0.5], "iters_per_epoch": 2,
            "status": "complete", "run_id": "abc"}


def good_config():
    return {"run_id": "abc", "args": {"seed": 0, "optimizer": "adam"},
            "optimizer": {"name": "adam", "hyperparameters": {"lr": 0.1}}}


def good_plan():
    return {"name": "s", "optimizers": ["adam", "sgd"], "seeds": [0, 1], "epochs": 2, "select": "train_loss",
            "weight_decay": 0.0, "command": "python src/sweep.py", "created": "now", "lrs": [0.01, 0.1]}


def changed(make, **changes):
    record = make()
    for key, value in changes.items():
        if value is DROP:
            record.pop(key)
        else:
            record[key] = value
    return record


DROP = object()
METRICS_CASES = [
    ("a list", [1, 2], "its metrics are not a record of this repository"),
    ("no epoch", changed(good_metrics, epoch=DROP), "its metrics are not a record of this repository"),
    ("no status", changed(good_metrics, status=DROP), "it has no status"),
    ("a status of another kind", changed(good_metrics, status="done"), "its status is 'done', not one of"),
    ("no train_loss", changed(good_metrics, train_loss=DROP), "it has no train_loss"),
    ("an empty list", changed(good_metrics, test_loss=[]), "its test_loss is empty"),
    ("a number for a list", changed(good_metrics, seconds=1.0), "its seconds is not a list"),
    ("strings", changed(good_metrics, lr=["a", "b"]), "its lr holds str values, not numbers"),
    ("booleans", changed(good_metrics, test_acc=[True, False]), "its test_acc holds bool values, not numbers"),
    ("a list of another length", changed(good_metrics, train_loss=[2.3, 1.0, 0.5]), "its train_loss has 3 values for 2 epochs"),
    ("epochs out of order", changed(good_metrics, epoch=[1, 0]), "its epoch list is not whole epochs in increasing order"),
    ("repeated epochs", changed(good_metrics, epoch=[1, 1]), "its epoch list is not whole epochs in increasing order"),
    ("fractional epochs", changed(good_metrics, epoch=[0, 0.5]), "its epoch list is not whole epochs in increasing order"),
    ("iter_loss not a list", changed(good_metrics, iter_loss=2.0), "its iter_loss is not a list of numbers"),
    ("iter_loss of strings", changed(good_metrics, iter_loss=["x"]), "its iter_loss is not a list of numbers"),
    ("iters_per_epoch not a number", changed(good_metrics, iters_per_epoch="2"), "its iters_per_epoch is not a number"),
    ("negative iters_per_epoch", changed(good_metrics, iters_per_epoch=-1), "its iters_per_epoch is not a number"),
    ("an integer run id", changed(good_metrics, run_id=7), "its run_id is 7, not a string"),
]


def test_a_good_record_reads_back(tmp_path):
    """The cases below differ from these records in one thing each: it is what each refusal is about."""
    store.save_json(good_metrics(), tmp_path / store.METRICS_JSON)
    store.save_json(good_config(), tmp_path / store.CONFIG)
    store.save_json(good_plan(), tmp_path / meaning.PLAN)
    assert store.load_run(tmp_path) == (good_config(), good_metrics())
    assert meaning.load_plan(tmp_path, rerun=True) == good_plan()


@pytest.mark.parametrize("metrics, fragment", [c[1:] for c in METRICS_CASES], ids=[c[0] for c in METRICS_CASES])
def test_each_check_of_the_metrics_reader_alone(tmp_path, metrics, fragment):
    (tmp_path / store.METRICS_JSON).write_text(json.dumps(metrics))
    with pytest.raises(UserError, match="^" + str(tmp_path).replace("\\", "\\\\")) as err:
        store.load_metrics(tmp_path)
    assert fragment in str(err.value)


def test_a_pickle_only_record_is_refused_unless_trusted(tmp_path):
    store.save_metrics(good_metrics(), tmp_path)
    (tmp_path / store.METRICS_JSON).unlink()
    with pytest.raises(UserError, match="a pickle, and loading a pickle can run code"):
        store.load_metrics(tmp_path)
    assert store.load_metrics(tmp_path, trust_pickles=True) == good_metrics()


CONFIG_CASES = [
    ("a list", [1], "is not a run's config"),
    ("no args", changed(good_config, args=DROP), "is not a run's config"),
    ("no optimizer", changed(good_config, optimizer=DROP), "it has no optimizer"),
    ("an optimizer that is a string", changed(good_config, optimizer="adam"), "its optimizer is not an object"),
    ("an optimizer without a name", changed(good_config, optimizer={"hyperparameters": {}}),
     "its optimizer has no name or no hyperparameters"),
    ("an optimizer without hyperparameters", changed(good_config, optimizer={"name": "adam"}),
     "its optimizer has no name or no hyperparameters"),
    ("no seed", changed(good_config, args={"optimizer": "adam"}), "its args have no seed"),
    ("a string seed", changed(good_config, args={"seed": "0"}), "its args.seed is '0', not a whole number"),
    ("a boolean seed", changed(good_config, args={"seed": True}), "its args.seed is True, not a whole number"),
    ("an integer run id", changed(good_config, run_id=7), "its run_id is 7, not a string"),
]


@pytest.mark.parametrize("config, fragment", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_each_check_of_the_config_reader_alone(tmp_path, config, fragment):
    (tmp_path / store.CONFIG).write_text(json.dumps(config))
    with pytest.raises(UserError) as err:
        store.load_config(tmp_path / store.CONFIG)
    assert fragment in str(err.value) and str(tmp_path / store.CONFIG) in str(err.value)


@pytest.mark.parametrize("config_id, metrics_id", [("abc", "abd"), ("abc", None), (None, "abc")])
def test_the_run_reader_refuses_a_config_and_metrics_of_two_runs(tmp_path, config_id, metrics_id):
    store.save_json(changed(good_config, run_id=config_id), tmp_path / store.CONFIG)
    store.save_json(changed(good_metrics, run_id=metrics_id), tmp_path / store.METRICS_JSON)
    with pytest.raises(UserError, match="config.json and the metrics belong to different runs"):
        store.load_run(tmp_path)


PLAN_CASES = [
    ("a list", [1], False, "it is a JSON list, not an object"),
    ("no created, on a re-run", changed(good_plan, created=DROP), True, "it has no created"),
    *((f"no {key}", changed(good_plan, **{key: DROP}), False, f"it has no {key}")
      for key in ("name", "optimizers", "seeds", "epochs", "select", "weight_decay", "command")),
    ("a name that is a number", changed(good_plan, name=1), False, "its name is not what a plan holds"),
    ("a command that is a list", changed(good_plan, command=["python"]), False, "its command is not what a plan holds"),
    ("a created that is a number", changed(good_plan, created=1), True, "its created is not what a plan holds"),
    ("repeated optimizers", changed(good_plan, optimizers=["adam", "adam"]), False, "its optimizers is not"),
    ("an empty optimizers list", changed(good_plan, optimizers=[]), False, "its optimizers is not"),
    ("repeated seeds", changed(good_plan, seeds=[0, 0]), False, "its seeds is not"),
    ("string seeds", changed(good_plan, seeds=["0"]), False, "its seeds is not"),
    ("zero epochs", changed(good_plan, epochs=0), False, "its epochs is not"),
    ("boolean epochs", changed(good_plan, epochs=True), False, "its epochs is not"),
    ("another select", changed(good_plan, select="test_acc"), False, "its select is not"),
    ("a string weight decay", changed(good_plan, weight_decay="0"), False, "its weight_decay is not"),
    ("settings of other optimizers", changed(good_plan, settings={"adam": [{"lr": 0.1}]}), False,
     "its settings are not {optimizer: [setting]}"),
    ("settings not a list of settings", changed(good_plan, settings={"adam": [0.1], "sgd": [0.1]}), False,
     "its settings are not {optimizer: [setting]}"),
    ("no lrs and no settings", changed(good_plan, lrs=DROP), False, "it has neither settings nor a list of positive lrs"),
    ("a negative lr", changed(good_plan, lrs=[-0.1]), False, "it has neither settings nor a list of positive lrs"),
    ("a best that is a list", changed(good_plan, best=[0.1]), False, "its best is not {optimizer: setting or null}"),
    ("a best that is a number", changed(good_plan, best={"adam": 0.1}), False, "its best is not {optimizer: setting or null}"),
]


@pytest.mark.parametrize("plan, rerun, fragment", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_each_check_of_the_plan_reader_alone(tmp_path, plan, rerun, fragment):
    (tmp_path / meaning.PLAN).write_text(json.dumps(plan))
    with pytest.raises(UserError) as err:
        meaning.load_plan(tmp_path, rerun=rerun)
    assert fragment in str(err.value) and str(tmp_path / meaning.PLAN) in str(err.value)
