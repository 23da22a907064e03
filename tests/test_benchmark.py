import json

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
    assert all(v > 0 for v in report["samples_per_s"].values())
    assert report["ratio_pipeline_to_compute"] == report["samples_per_s"]["pipeline"] / report["samples_per_s"]["compute"]
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
    assert all(r["ratio"] == r["member_steps_per_s"] / r["solo_member_steps_per_s"] for r in rows)   # one round: one pair
    assert all(r["ratio_range"] == [r["ratio"], r["ratio"]] for r in rows)


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
    assert sgd["ratio_to_sgd"] == 1.0
    assert all(r["ratio_to_sgd"] == r["us_per_step"] / sgd["us_per_step"] for r in rows if r["us_per_step"])


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
