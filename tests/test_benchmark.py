import json

import pytest

from conftest import run_script


def test_benchmark_smoke_prints_every_figure(tmp_path):
    """It runs and reports; speed targets are checked by reading its output, not here."""
    out = tmp_path / "bench.json"
    proc = run_script("benchmark.py", "--tiny", "--steps", "2", "--warmup", "1", "--rounds", "1",
                      "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    for label in ("compute", "pipeline", "tutorial", "pipeline / compute", "pipeline / tutorial",
                  "projected 45-epoch run", "peak resident memory"):
        assert label in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["samples_per_s"]) == {"compute", "pipeline", "tutorial"}
    assert all(v > 0 for v in report["samples_per_s"].values()) and report["ratio_pipeline_to_compute"] > 0
    assert report["projected_run_s"] > report["epochs"] * report["epoch_s"]["pipeline"]    # plus the evaluations
    assert report["peak_rss_mb"] > 0 and report["device"]["type"] == "cpu"


def test_trials_mode_prints_the_speed_up_table(tmp_path):
    out = tmp_path / "trials.json"
    proc = run_script("benchmark.py", "--workload", "mnist-logreg", "--tiny", "--trials", "1", "4", "--steps", "2",
                      "--warmup", "1", "--rounds", "1", "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "| mnist-logreg | 4 | shared | stacked |" in proc.stdout and "| mnist-logreg | 4 | own | per member |" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {(r["members"], r["data_order"], r["step"]) for r in rows} == {
        (1, "shared", "per member"), *((4, order, step) for order in ("shared", "own") for step in ("per member", "stacked"))}
    assert all(r["member_steps_per_s"] > 0 and r["solo_member_steps_per_s"] > 0 for r in rows)
    assert all(r["ratio_range"] == [r["ratio"], r["ratio"]] and r["ratio"] > 0 for r in rows)   # one round: one pair


def test_trials_mode_refuses_a_model_that_does_not_stack():
    from conftest import assert_one_line_error
    proc = run_script("benchmark.py", "--workload", "cifar10-tutorial-cnn", "--tiny", "--trials", "4")
    assert_one_line_error(proc, "has no stacked model")


def test_trials_mode_refuses_a_dropout_the_model_does_not_take():
    from conftest import assert_one_line_error, run_in_process
    proc = run_in_process("benchmark.py", "--workload", "mnist-logreg", "--tiny", "--trials", "2", "--dropout", "paper")
    assert_one_line_error(proc, "--dropout paper: workload mnist-logreg (model logreg) takes none")


def test_overhead_mode_times_every_optimizer_against_sgd(tmp_path):
    out = tmp_path / "overhead.json"
    proc = run_script("benchmark.py", "--overhead", "--workload", "mnist-logreg", "--steps", "2", "--warmup", "1",
                      "--rounds", "1", "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "| mnist-logreg (7,850) | sgd | SGD-Nesterov (the baseline) |" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert {r["optimizer"] for r in rows} >= {"sgd", "adam", "paper-adam", "adamax", "paper-adamax"}
    sgd = next(r for r in rows if r["optimizer"] == "sgd")
    assert sgd["ratio_to_sgd"] == 1.0 and all(r["us_per_step"] > 0 for r in rows if r["us_per_step"] is not None)


def test_trials_mode_times_the_model_with_the_dropout_asked_for():
    """--dropout reaches the trials' models: the MLP's dropout layers are there by default, gone with none."""
    import argparse

    import torch
    from torch import nn


    from optstudy.experiments import benchmark as benching
    from optstudy.training import optimizers
    from optstudy.training import loop
    from optstudy.training import workloads
    workload = workloads.WORKLOADS["mnist-mlp"]
    args = argparse.Namespace(dataset=None, data_dir=None, data_root="unused", tiny=True, channels_last=False)
    data, inputs = benching.load(args, workload, torch.device("cpu"))
    settings = loop.Settings(8)
    hyper = optimizers.resolve("adam", {}, {})
    for dropout, expected in ((None, True), ("none", False)):
        run = benching.stack_run(2, True, workload, data, inputs, settings, torch.device("cpu"), "adam", hyper,
                                  dropout=dropout)
        assert any(isinstance(m, nn.Dropout) for m in run.models[0].modules()) is expected


def test_a_trials_row_takes_the_ratio_of_each_pair_then_their_median_and_range():
    """Paired: a round where the machine was slow for both gives the same ratio as a fast one."""
    from optstudy.experiments import benchmark as benching
    row = benching.stack_row("w", (16, True, False), [(100.0, 200.0), (50.0, 150.0), (100.0, 100.0)])
    assert row["ratio"] == 2.0 and row["ratio_range"] == [1.0, 3.0]
    assert row["member_steps_per_s"] == 150.0 and row["solo_member_steps_per_s"] == 100.0
    assert (row["members"], row["data_order"], row["step"]) == (16, "shared", "per member")


def test_the_smoke_report_takes_the_median_of_each_rate_then_their_ratios():
    """The summary from rates given by hand (not from a timed run): medians 110, 66 and 11
    samples/s (the means differ), so pipeline / compute = 0.6 and pipeline / tutorial = 6."""
    import argparse

    import torch

    from optstudy.experiments import benchmark as benching
    from optstudy.training import loop, workloads
    workload = workloads.WORKLOADS["cifar10-cnn"]
    args = argparse.Namespace(workload="cifar10-cnn", optimizer="adam", compile="off", channels_last=False, steps=2,
                              rounds=3)
    data = argparse.Namespace(source="synthetic")
    results = {"compute": [300.0, 100.0, 110.0], "pipeline": [33.0, 70.0, 66.0], "tutorial": [10.0, 11.0, 30.0]}
    r = benching.summarise(args, workload, loop.Settings(128), torch.device("cpu"), data, results, 1000.0, 1.0)
    assert r["samples_per_s"] == {"compute": 110.0, "pipeline": 66.0, "tutorial": 11.0}
    assert r["ratio_pipeline_to_compute"] == pytest.approx(0.6) and r["ratio_pipeline_to_tutorial"] == pytest.approx(6.0)
    assert r["epoch_s"]["pipeline"] == pytest.approx(50_000 / 66.0)          # CIFAR-10's 50,000 training images
    # 45 epochs at 66 samples/s, 46 evaluations of the 10,000 test images and one of the training set at 1000/s
    assert r["projected_run_s"] == pytest.approx(45 * 50_000 / 66 + 46 * 10.0 + 50.0)


def test_the_overhead_ratio_is_each_optimizers_median_step_over_sgds(monkeypatch):
    """Step times given by hand per round: SGD 10, 40, 20 us (median 20, mean 23.3); every other
    optimizer 45, 90, 50 (median 50): each ratio is 2.5, SGD's 1."""
    import argparse

    import torch

    from optstudy.experiments import benchmark as benching
    rounds = {}

    def fake_time_steps(optimizer, *rest):
        k = rounds[id(optimizer)] = rounds.get(id(optimizer), -1) + 1
        return ([10.0, 40.0, 20.0] if type(optimizer).__name__ == "SGD" else [45.0, 90.0, 50.0])[k]
    monkeypatch.setattr(benching, "time_steps", fake_time_steps)
    rows = benching.measure_overhead("mnist-logreg", torch.device("cpu"), argparse.Namespace(rounds=3, steps=1, warmup=0))
    sgd = next(r for r in rows if r["optimizer"] == "sgd")
    assert sgd["us_per_step"] == 20.0 and sgd["ratio_to_sgd"] == 1.0
    adam = next(r for r in rows if r["optimizer"] == "adam")
    assert adam["us_per_step"] == 50.0 and adam["ratio_to_sgd"] == 2.5
