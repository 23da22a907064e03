"""Three splits named honestly: a validation split held out of the training set, the test split
recorded but never selected on, and records from before the split still read correctly."""
import json

import pytest
import torch

from optstudy.data import datasets
from optstudy.records import store as records
import sweep
from optstudy.experiments import sweep as sweeping
from optstudy.core.cli import UserError


def indexed(n_train=100, n_test=40):
    """Data whose samples are their own indices, so that splits can be compared by identity."""
    return datasets.Data(torch.arange(n_train).view(-1, 1, 1, 1), torch.arange(n_train) % 10,
                         torch.arange(1000, 1000 + n_test).view(-1, 1, 1, 1), torch.arange(n_test) % 10,
                         list(range(10)), "indexed")


def ids(x):
    return set(x.flatten().tolist())


def test_the_validation_split_is_disjoint_fixed_and_independent_of_limit_train():
    full = datasets.limit(indexed(), None, None, val_split=0.2)          # 20% of 100
    assert len(full.val_y) == 20 and len(full.train_y) == 80
    assert not ids(full.val_x) & ids(full.train_x) and not ids(full.val_x) & ids(full.test_x)
    small = datasets.limit(indexed(), 30, 10, val_split=20)
    assert ids(small.val_x) == ids(full.val_x)                  # the same held-out samples, whatever the limit
    assert ids(small.train_x) <= ids(full.train_x) and len(small.train_y) == 30
    assert ids(datasets.limit(indexed(), 50, None, val_split=0.1).val_x) < ids(full.val_x)   # 10% of 50: nested
    none = datasets.limit(indexed(), 30, None)
    assert none.val_x is None and ids(none.train_x) == ids(small.train_x)   # no split: today's subsets
    with pytest.raises(UserError, match="hold out at least one"):
        datasets.limit(indexed(), None, None, val_split=100)


def test_a_run_records_train_val_and_test_under_their_names(train_run):
    code, run_dir = train_run("--val-split", "32", epochs=1)
    assert code == 0
    metrics = records.load_metrics(run_dir)
    for split in ("train", "val", "test"):
        assert len(metrics[f"{split}_loss"]) == len(metrics[f"{split}_acc"]) == 2
    config = records.load_json(run_dir / "config.json")["data"]
    assert (config["train_size"], config["val_size"], config["test_size"]) == (256, 32, 128)
    assert config["val"].startswith("held out of the training set")
    code, run_dir = train_run("--val-split", "32", "--seed", "1", name="other", epochs=1)
    other = records.load_metrics(run_dir)
    assert other["val_loss"][0] != metrics["val_loss"][0]      # another init, the same 32 samples (tested above)


def test_without_a_split_the_test_split_is_test(train_run):
    code, run_dir = train_run(epochs=1)
    metrics = records.load_metrics(run_dir)
    assert "val_loss" not in metrics and len(metrics["test_acc"]) == 2
    assert records.load_json(run_dir / "config.json")["data"]["val"] == "none"


def test_records_from_before_the_split_read_their_validation_as_test(tmp_path):
    old = {"epoch": [0, 1], "train_loss": [2.0, 1.0], "val_loss": [2.1, 1.5], "val_acc": [10.0, 40.0],
           "iter_loss": [1.0], "status": "complete"}
    (tmp_path / records.METRICS_JSON).write_text(json.dumps(old))
    metrics = records.load_metrics(tmp_path)
    assert metrics["test_acc"] == [10.0, 40.0] and "val_acc" not in metrics


def fake_record(directory, val_acc, test_acc):
    directory.mkdir(parents=True)
    # a record is its config.json and metrics together: the sweep's picks read both (store.load_run)
    records.save_json({"run_id": None, "args": {"seed": 0}, "optimizer": {"name": "adam", "hyperparameters": {}}},
                      directory / records.CONFIG)
    records.save_metrics({"epoch": [0, 1], "train_loss": [2.0, 1.0], "val_loss": [2.0, 1.0], "val_acc": val_acc,
                          "test_loss": [2.0, 1.0], "test_acc": test_acc, "iter_loss": [], "status": "complete",
                          "run_id": None}, directory)


def test_selection_never_reads_the_test_split(tmp_path):
    # The test split ranks the rates the other way round: a pick that looked at it would differ.
    fake_record(records.sweep_run_dir(tmp_path, "adam", 1e-3, 0), [10.0, 60.0], [10.0, 20.0])
    fake_record(records.sweep_run_dir(tmp_path, "adam", 1e-2, 0), [10.0, 50.0], [10.0, 90.0])
    stage1 = [("adam", {"lr": 1e-3}, 0), ("adam", {"lr": 1e-2}, 0)]
    assert sweeping.pick_best(stage1, tmp_path, "val_acc") == {"adam": {"lr": 1e-3}}


def test_a_sweep_refuses_to_select_on_the_test_split(tmp_path):
    with pytest.raises(UserError, match="would select on the test split"):
        sweep.main(["--name", "s", "--output-dir", str(tmp_path), "--select", "val_acc", "--val-split", "0"])


def test_a_sweep_holds_out_validation_and_reports_test_beside_it(tmp_path):
    from conftest import TINY
    assert sweep.main(["--name", "s", "--output-dir", str(tmp_path), "--optimizers", "adam", "--lrs", "1e-3,1e-2",
                       "--seeds", "0", "--epochs", "1", "--select", "val_acc", *TINY]) == 0
    plan = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert plan["val_split"] == sweeping.VAL_SPLIT
    config = records.load_json(records.sweep_run_dir(tmp_path / "s", "adam", 1e-3, 0) / "config.json")
    assert config["args"]["val_split"] == sweeping.VAL_SPLIT and config["data"]["val_size"] > 0
    table = (tmp_path / "s" / "results.md").read_text()
    assert "held out (val); the test split is only reported" in table
    assert "final_val_acc" in table and "final_test_acc" in table
