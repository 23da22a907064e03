"""Trials trained together as one stacked model equal their solo runs: own initialisation, data
order, dropout masks and sampling noise, hyperparameters and optimizer state, per trial."""
from dataclasses import replace

import pytest
import torch

from optstudy.data import datasets
import model as models
from optstudy.training import optimizers
from optstudy.training import stacking as trials
from optstudy.training import flags, setup, workloads

def train_together(argvs):
    """Runs given by their train.py flags, trained together as train.py's library does it."""
    return setup.train_runs([flags.parse(argv) for argv in argvs])


@pytest.fixture(autouse=True)
def one_thread():
    """Bit-identity holds at one thread: with more, MKL splits a batched product across trials but a
    solo product within itself, and the sums round differently (the sweep's runs say their threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


STEPS = 50
BATCH = 32
# Per trial: seed, optimizer hyperparameters. Learning rates, betas, weight decay and seeds differ.
ADAM = [(0, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
        (1, dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-4)),
        (2, dict(lr=1e-2, betas=(0.95, 0.9), eps=1e-8, weight_decay=1e-3))]


def tiny_data(workload, n_train=STEPS * BATCH, dtype=torch.float32):
    w = workloads.WORKLOADS[workload]
    data = w.synthetic(n_train=n_train, n_test=64)
    inputs = datasets.make_inputs(data, w.scale)
    data, inputs = datasets.prepare(data, inputs)
    if not isinstance(data.train_x, torch.Tensor):          # sparse rows of words
        return data, inputs
    return replace(data, train_x=data.train_x.to(dtype), test_x=data.test_x.to(dtype)), inputs


def build(workload, seed, dtype, dropout):
    w = workloads.WORKLOADS[workload]
    torch.manual_seed(seed)
    spec = models.MODELS[w.model]
    shape, classes = ((datasets.make_synthetic_bow(8, 8).sample_shape, 2) if w.model == "bow-logreg"
                      else ((1, 28, 28), 10))
    return models.build(w.model, shape, classes, dropout or spec.dropouts[0], 0.5).to(dtype)


def solo_run(workload, optimizer, seed, hyper, data, inputs, data_seed, dtype, dropout=None):
    """Today's training step, STEPS times: (final parameters, per-step losses)."""
    model = build(workload, seed, dtype, dropout).train()
    opt = optimizers.build(optimizer, model.parameters(), hyper)
    objective = workloads.OBJECTIVES[workloads.WORKLOADS[workload].objective]
    losses = []
    for x, y in datasets.train_batches(data, inputs, BATCH, torch.Generator().manual_seed(data_seed)):
        loss, _ = objective(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return [p.detach() for p in model.parameters()], losses


def batched_run(workload, optimizer, setups, data, inputs, data_seeds, dtype, dropout=None, stacked_step=False):
    """The same trials stacked: (per trial final parameters, [steps, K] losses)."""
    models_, noise = [], []
    for seed, _ in setups:
        models_.append(build(workload, seed, dtype, dropout))
        noise.append(torch.Generator().set_state(torch.get_rng_state()))   # where the solo run's stream is now
    w = workloads.WORKLOADS[workload]
    stack = trials.Stack(models_, noise, stacked_grads=stacked_step).train()
    opt = optimizers.build(optimizer, [{"params": list(m.parameters()), **h} for m, (_, h) in zip(models_, setups)],
                           setups[0][1])
    opt = trials.StackedStep(opt, stack) if stacked_step else opt
    objective = workloads.OBJECTIVES[w.objective]
    generators = [torch.Generator().manual_seed(s) for s in data_seeds]
    losses = []
    for x, y in trials.train_batches(data, inputs, BATCH, generators):
        loss, _ = objective(stack, x, y)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
        losses.append(loss.detach())
    return [[p.detach() for p in m.parameters()] for m in models_], torch.stack(losses)


@pytest.mark.parametrize("workload, dropout", [("mnist-logreg", None), ("mnist-mlp", "paper"), ("mnist-vae", None),
                                               ("imdb-bow-logreg", "paper")])
@pytest.mark.parametrize("optimizer", ["adam", "paper-adam"])
def test_each_trial_in_its_own_order_is_bit_identical_to_its_solo_run(workload, dropout, optimizer):
    data, inputs = tiny_data(workload)
    params, losses = batched_run(workload, optimizer, ADAM, data, inputs, [s for s, _ in ADAM], torch.float32, dropout)
    for k, (seed, hyper) in enumerate(ADAM):
        solo_params, solo_losses = solo_run(workload, optimizer, seed, hyper, data, inputs, seed, torch.float32, dropout)
        assert all(torch.equal(a, b) for a, b in zip(params[k], solo_params)), f"trial {k}"
        assert losses[:, k].tolist() == pytest.approx(solo_losses, rel=1e-6, abs=0)   # a few ulp: the mean sums in another order


@pytest.mark.parametrize("workload, dropout", [("mnist-logreg", None), ("mnist-vae", None),
                                               pytest.param("mnist-mlp", "paper", marks=pytest.mark.slow)])
def test_trials_sharing_a_data_order_agree_with_their_solo_runs_in_fp64(workload, dropout):
    """One minibatch for every trial (they share a seed): the first layer is one wider product,
    whose sums round differently in fp32, so here agreement is checked in fp64."""
    data, inputs = tiny_data(workload, dtype=torch.float64)
    setups = [(0, h) for _, h in ADAM]                          # one seed: one init and one data order
    params, losses = batched_run(workload, "adam", setups, data, inputs, [0, 0, 0], torch.float64, dropout)
    for k, (seed, hyper) in enumerate(setups):
        solo_params, solo_losses = solo_run(workload, "adam", seed, hyper, data, inputs, 0, torch.float64, dropout)
        for a, b in zip(params[k], solo_params):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert losses[:, k].tolist() == pytest.approx(solo_losses, rel=1e-6)   # the objective's loss is fp32


def test_any_optimizer_with_per_tensor_rules_runs_stacked_unchanged(tmp_path):
    """A user's optimizer whose step depends on the whole tensor (a LAMB-style trust ratio) sees
    each trial's own tensors, so its trials equal their solo runs."""
    (tmp_path / "lamb.py").write_text('''
import torch
class TrustSGD(torch.optim.Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                ratio = p.norm() / (p.grad.norm() + 1e-12)
                p.sub_(group["lr"] * ratio * p.grad)
''')
    name = f"{tmp_path / 'lamb.py'}:TrustSGD"
    data, inputs = tiny_data("mnist-logreg")
    setups = [(0, dict(lr=0.01)), (1, dict(lr=0.05))]
    params, _ = batched_run("mnist-logreg", name, setups, data, inputs, [0, 1], torch.float32)
    for k, (seed, hyper) in enumerate(setups):
        solo_params, _ = solo_run("mnist-logreg", name, seed, hyper, data, inputs, seed, torch.float32)
        assert all(torch.equal(a, b) for a, b in zip(params[k], solo_params))


def test_a_trials_optimizer_state_splits_and_merges_in_the_solo_format():
    data, inputs = tiny_data("mnist-logreg", n_train=4 * BATCH)
    models_ = [build("mnist-logreg", s, torch.float32, None) for s, _ in ADAM]
    stack = trials.Stack(models_, [torch.Generator() for _ in ADAM])
    opt = torch.optim.Adam([{"params": list(m.parameters()), **h} for m, (_, h) in zip(models_, ADAM)])
    for x, y in trials.train_batches(data, inputs, BATCH, [torch.Generator().manual_seed(s) for s, _ in ADAM]):
        loss, _ = workloads.classify(stack, x, y)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    state = opt.state_dict()
    solo = torch.optim.Adam(models_[1].parameters())
    solo.load_state_dict(trials.group_of(state, 1))            # a trial's state loads into a solo optimizer
    assert solo.param_groups[0]["lr"] == 3e-3 and solo.param_groups[0]["betas"] == (0.8, 0.99)
    assert torch.equal(solo.state[models_[1].linear.weight]["exp_avg"], opt.state[models_[1].linear.weight]["exp_avg"])
    merged = trials.merge_groups([trials.group_of(state, k) for k in range(len(ADAM))])
    assert merged["param_groups"] == state["param_groups"]
    assert all(torch.equal(merged["state"][i]["exp_avg_sq"], state["state"][i]["exp_avg_sq"]) for i in state["state"])
    saved = trials.member_model_state(stack, 2)
    assert saved["linear.weight"].untyped_storage().nbytes() == 10 * 784 * 4      # its own, not the stack's


# ---------------------------------------------------------------- through train.py's loop

def run_argv(out, name, *extra, epochs=2):
    return ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "320", "--limit-val", "64",
            "--val-split", "64", "--batch-size", "32", "--threads", "1", "--quiet", "--epochs", str(epochs),
            "--output-dir", str(out), "--run-name", name, *map(str, extra)]


TRIALS = [("--optimizer", "adam", "--lr", "1e-3", "--seed", "0"),
          ("--optimizer", "adam", "--lr", "3e-2", "--seed", "1", "--betas", "0.8", "0.99"),
          ("--optimizer", "adam", "--lr", "1e-2", "--seed", "2", "--weight-decay", "1e-3")]


def close_records(a, b):
    """Two records of the same run: equal but for wall-clock times, run ids and the last bits of
    loss means (summed in another order)."""
    for key in set(a) | set(b):
        if key in ("seconds", "run_id"):
            continue
        if key.endswith("loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, nan_ok=True), key
        else:
            assert a[key] == b[key], key


def test_trials_trained_together_record_what_their_solo_runs_record(tmp_path):
    from optstudy.records import store as records
    import train
    assert train_together([run_argv(tmp_path / "batch", f"t{k}", *t) for k, t in enumerate(TRIALS)]) == 0
    for k, t in enumerate(TRIALS):
        assert train.main(run_argv(tmp_path / "solo", f"t{k}", *t)) == 0
        batch_config, batch = records.load_run(tmp_path / "batch" / f"t{k}")
        solo_config, solo = records.load_run(tmp_path / "solo" / f"t{k}")
        close_records(batch, solo)
        assert batch_config["batched"] == {"trials": 3} and "batched" not in solo_config
        assert batch_config["optimizer"] == solo_config["optimizer"]
        batch_state = torch.load(tmp_path / "batch" / f"t{k}" / records.CHECKPOINT, weights_only=False)
        solo_state = torch.load(tmp_path / "solo" / f"t{k}" / records.CHECKPOINT, weights_only=False)
        assert all(torch.equal(batch_state["model"][n], v) for n, v in solo_state["model"].items())
        assert batch_state["optimizer"]["param_groups"] == solo_state["optimizer"]["param_groups"]
        assert batch_state["schedule"] == solo_state["schedule"]


def test_a_diverging_trial_leaves_the_batch_and_the_others_are_unchanged(tmp_path):
    from optstudy.records import store as records
    import train
    diverging = ("--optimizer", "sgd", "--lr", "1e6", "--seed", "3")
    runs = [("--optimizer", "sgd", "--lr", "1e-2", "--seed", "0"), diverging, ("--optimizer", "sgd", "--lr", "0.1", "--seed", "1")]
    assert train_together([run_argv(tmp_path / "batch", f"t{k}", *t, epochs=3) for k, t in enumerate(runs)]) == 0
    assert records.load_metrics(tmp_path / "batch" / "t1")["status"] == "diverged"
    for k in (0, 2):
        assert train.main(run_argv(tmp_path / "solo", f"t{k}", *runs[k], epochs=3)) == 0
        close_records(records.load_metrics(tmp_path / "batch" / f"t{k}"), records.load_metrics(tmp_path / "solo" / f"t{k}"))
    assert train.main(run_argv(tmp_path / "solo", "t1", *diverging, epochs=3)) == 3
    close_records(records.load_metrics(tmp_path / "batch" / "t1"), records.load_metrics(tmp_path / "solo" / "t1"))


def test_a_batch_resumes_where_it_stopped_and_each_trial_resumes_alone(tmp_path):
    from optstudy.records import store as records
    import train
    argvs = lambda out, epochs, *extra: [run_argv(out, f"t{k}", *t, *extra, epochs=epochs) for k, t in enumerate(TRIALS)]
    assert train_together(argvs(tmp_path / "batch", 1)) == 0
    assert train_together(argvs(tmp_path / "batch", 3, "--resume")) == 0          # on, batched
    assert train_together(argvs(tmp_path / "mixed", 2)) == 0
    assert train.main(run_argv(tmp_path / "mixed", "t1", *TRIALS[1], "--resume", epochs=3)) == 0   # on, alone
    for k, t in enumerate(TRIALS):
        assert train.main(run_argv(tmp_path / "solo", f"t{k}", *t, epochs=3)) == 0
        solo = records.load_metrics(tmp_path / "solo" / f"t{k}")
        close_records(records.load_metrics(tmp_path / "batch" / f"t{k}"), solo)
    close_records(records.load_metrics(tmp_path / "mixed" / "t1"), records.load_metrics(tmp_path / "solo" / "t1"))


def test_runs_that_differ_in_more_than_their_own_settings_are_refused(tmp_path):
    from optstudy.core.cli import UserError
    with pytest.raises(UserError, match="must share batch_size"):
        train_together([run_argv(tmp_path, "a"), run_argv(tmp_path, "b", "--batch-size", "64")])
    with pytest.raises(UserError, match="no stacked model"):
        train_together([[*run_argv(tmp_path, "a"), "--workload", "cifar10-cnn"],
                          [*run_argv(tmp_path, "b"), "--workload", "cifar10-cnn"]])


# ---------------------------------------------------------------- in the sweep

SWEEP = ["--workload", "mnist-logreg", "--optimizers", "adam", "sgd", "--lrs", "1e-3:1e-1:3", "--seeds", "0", "1",
         "--epochs", "3", "--dataset", "synthetic", "--limit-train", "4096", "--threads", "1", "--no-report"]


def test_a_batched_sweep_matches_one_at_a_time_and_resumes_after_a_kill(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from optstudy.records import store as records
    import sweep
    from optstudy.core.cli import run_main
    from conftest import REPO
    assert run_main(sweep.main, ["--name", "solo", "--output-dir", str(tmp_path), *SWEEP, "--batch-trials", "1"]) == 0
    cmd = [sys.executable, str(REPO / "src" / "sweep.py"), "--name", "b", "--output-dir", str(tmp_path), *SWEEP,
           "--batch-trials", "4"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "b").rglob("metrics.pkl")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b" / "sweep.json").exists() or "best" not in json_plan(tmp_path / "b")   # cut short
    assert run_main(sweep.main, ["--name", "b", "--output-dir", str(tmp_path), *SWEEP, "--batch-trials", "4"]) == 0
    solo_runs = records.find_runs([tmp_path / "solo"])
    assert len(solo_runs) == 8
    for run in solo_runs:
        twin = tmp_path / "b" / run.relative_to(tmp_path / "solo")
        solo, batch = records.load_metrics(run), records.load_metrics(twin)
        assert batch["status"] == solo["status"] == "complete"
        # Stage 1 shares seed 0 and its minibatches: one wider first-layer product rounds differently,
        # and where the kill fell decides which trials resume together, alone or batched. A loss
        # near 0.01 after 3 epochs carries that drift at up to about 1e-3 relative, and on 410
        # validation samples a near-tied prediction or two may flip (0.24 points each).
        assert batch["train_loss"] == pytest.approx(solo["train_loss"], rel=1e-2), run
        assert batch["val_acc"] == pytest.approx(solo["val_acc"], abs=1.0), run
    assert any("batched" in records.load_json(r / "config.json") for r in records.find_runs([tmp_path / "b"]))
    assert json_plan(tmp_path / "b")["best"] == json_plan(tmp_path / "solo")["best"]


def json_plan(sweep_dir):
    import json
    return json.loads((sweep_dir / "sweep.json").read_text())


def test_the_sweep_says_when_a_model_does_not_stack(tmp_path, capsys):
    import sweep
    from optstudy.core.cli import run_main
    argv = ["--name", "c", "--output-dir", str(tmp_path), "--optimizers", "adam", "--lrs", "1e-3", "--seeds", "0",
            "--epochs", "1", "--dataset", "synthetic", "--limit-train", "64", "--limit-val", "32", "--batch-size", "32",
            "--threads", "1", "--no-report", "--batch-trials", "4"]
    assert run_main(sweep.main, argv) == 0
    assert "model adam-cnn does not stack; its runs train one at a time" in capsys.readouterr().out


SGD = [(0, dict(lr=1e-2, weight_decay=0.0)), (1, dict(lr=3e-2, weight_decay=1e-4)), (2, dict(lr=0.1, weight_decay=1e-3))]


@pytest.mark.parametrize("workload, dropout, optimizer, setups", [
    *((w, d, o, s) for w, d in (("mnist-logreg", None), ("imdb-bow-logreg", "paper"))
      for o, s in (("adam", ADAM), ("sgd", SGD), ("momentum", SGD))),
    pytest.param("mnist-mlp", "paper", "adam", ADAM, marks=pytest.mark.slow)])   # 1.8M parameters in fp64: 26 s
def test_the_stacked_step_agrees_with_each_trials_own_optimizer_in_fp64(workload, dropout, optimizer, setups):
    """Not bit for bit: the stacked step runs torch's fused kernel (Adam(fused=True)'s), which
    rounds differently from the default loop of each trial's solo optimizer; in fp64 the difference
    after 50 steps is far below 1e-9."""
    data, inputs = tiny_data(workload, dtype=torch.float64)
    params, losses = batched_run(workload, optimizer, setups, data, inputs, [s for s, _ in setups], torch.float64,
                                 dropout, stacked_step=True)
    for k, (seed, hyper) in enumerate(setups):
        solo_params, solo_losses = solo_run(workload, optimizer, seed, hyper, data, inputs, seed, torch.float64, dropout)
        for a, b in zip(params[k], solo_params):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert losses[:, k].tolist() == pytest.approx(solo_losses, rel=1e-6)   # the objective's loss is fp32


@pytest.mark.parametrize("workload, dropout", [("mnist-logreg", None), ("imdb-bow-logreg", "paper")])
@pytest.mark.parametrize("optimizer, setups", [("adam", ADAM), ("momentum", SGD)])
def test_the_stacked_step_is_bit_identical_to_solo_runs_with_the_fused_kernel(workload, dropout, optimizer, setups):
    """The stacked step runs the kernel of Adam(fused=True) and SGD(fused=True): against solo runs
    with that kernel (--opt fused=True), each in its own data order, not one bit differs."""
    data, inputs = tiny_data(workload)
    fused = [(seed, {**hyper, "fused": True}) for seed, hyper in setups]
    params, _ = batched_run(workload, optimizer, fused, data, inputs, [s for s, _ in setups], torch.float32, dropout,
                            stacked_step=True)
    for k, (seed, hyper) in enumerate(fused):
        solo_params, _ = solo_run(workload, optimizer, seed, hyper, data, inputs, seed, torch.float32, dropout)
        assert all(torch.equal(a, b) for a, b in zip(params[k], solo_params)), f"trial {k}"


@pytest.mark.parametrize("optimizer, fragment", [("adamw", "AdamW has no stacked form"),
                                                 ("paper-adam", "PaperAdam has no stacked form")])
def test_the_stacked_step_refuses_what_it_cannot_compute(optimizer, fragment):
    models_ = [build("mnist-logreg", s, torch.float32, None) for s in (0, 1)]
    stack = trials.Stack(models_, [torch.Generator()] * 2, stacked_grads=True)
    opt = optimizers.build(optimizer, [{"params": list(m.parameters())} for m in models_], {"lr": 1e-3})
    with pytest.raises(ValueError, match=fragment):
        trials.StackedStep(opt, stack)


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_the_stacked_step_leaves_a_frozen_trial_untouched(optimizer):
    """A diverged trial is frozen: with NaN gradients, its parameters and optimizer state stay as they were."""
    models_ = [build("mnist-logreg", s, torch.float32, None) for s in (0, 1, 2)]
    stack = trials.Stack(models_, [torch.Generator()] * 3, stacked_grads=True)
    opt = optimizers.build(optimizer, [{"params": list(m.parameters())} for m in models_], {"lr": 1e-2})
    step = trials.StackedStep(opt, stack)
    for _ in range(2):
        for p in stack.stacked.values():
            p.grad = torch.randn_like(p)
        step.step()
    state = opt.state[stack.views["linear.weight"][1]]                     # trial 1's weight's optimizer state
    frozen = [t.clone() for t in [*models_[1].parameters(), *state.values()]]
    live = [t.clone() for t in models_[0].parameters()]
    step.frozen = {1}
    for p in stack.stacked.values():
        p.grad = torch.randn_like(p)
        p.grad[1] = float("nan")
    step.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, [*models_[1].parameters(), *state.values()]))
    assert not any(torch.equal(a, b) for a, b in zip(live, models_[0].parameters()))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_stacked_step_through_the_loop_resumes_exactly_and_stays_close_to_solo_runs(tmp_path, optimizer):
    from optstudy.records import store as records
    import train
    runs = [("--optimizer", optimizer, "--lr", lr, "--seed", seed) for lr, seed in (("1e-3", 0), ("1e-2", 1), ("3e-3", 2))]
    argvs = lambda out, epochs, *extra: [run_argv(out, f"t{k}", *t, "--stacked-step", *extra, epochs=epochs)
                                         for k, t in enumerate(runs)]
    assert train_together(argvs(tmp_path / "whole", 3)) == 0
    assert train_together(argvs(tmp_path / "parts", 1)) == 0
    assert train_together(argvs(tmp_path / "parts", 3, "--resume")) == 0
    for k, t in enumerate(runs):
        state = torch.load(tmp_path / "whole" / f"t{k}" / records.CHECKPOINT, weights_only=False)
        for tensor in [*state["model"].values(), *(v for s in state["optimizer"]["state"].values() for v in s.values())]:
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()   # its own, not all K
        whole = records.load_metrics(tmp_path / "whole" / f"t{k}")
        parts = records.load_metrics(tmp_path / "parts" / f"t{k}")
        assert {**whole, "seconds": 0, "run_id": 0} == {**parts, "seconds": 0, "run_id": 0}       # exactly
        assert train.main(run_argv(tmp_path / "solo", f"t{k}", *t, epochs=3)) == 0
        solo = records.load_metrics(tmp_path / "solo" / f"t{k}")
        assert whole["train_loss"] == pytest.approx(solo["train_loss"], rel=1e-4)


def test_the_stacked_step_refuses_an_optimizer_it_cannot_compute_before_training(tmp_path):
    from optstudy.core.cli import UserError
    argvs = [run_argv(tmp_path, f"t{k}", "--optimizer", "adamw", "--seed", k, "--stacked-step") for k in range(2)]
    with pytest.raises(UserError, match="AdamW has no stacked form"):
        train_together(argvs)
    assert not (tmp_path / "t0" / "metrics.json").exists()


def test_bag_of_words_trials_sharing_their_rows_are_bit_identical_to_solo_runs():
    """The bag-of-words regression gathers and sums rows: no product to round differently, so one
    shared minibatch still gives each trial its solo run's bits."""
    data, inputs = tiny_data("imdb-bow-logreg")
    setups = [(0, h) for _, h in ADAM]
    params, losses = batched_run("imdb-bow-logreg", "adam", setups, data, inputs, [0, 0, 0], torch.float32, "paper")
    for k, (seed, hyper) in enumerate(setups):
        solo_params, solo_losses = solo_run("imdb-bow-logreg", "adam", seed, hyper, data, inputs, 0, torch.float32,
                                            "paper")
        assert all(torch.equal(a, b) for a, b in zip(params[k], solo_params)), f"trial {k}"


def test_the_sweep_points_to_the_stacked_step_where_it_would_apply(tmp_path, capsys):
    import sweep
    from optstudy.core.cli import run_main
    argv = lambda name, *extra: ["--name", name, "--output-dir", str(tmp_path), "--lrs", "1e-3,3e-3", "--seeds", "0",
                                 "--epochs", "1", "--workload", "mnist-logreg", "--dataset", "synthetic",
                                 "--limit-train", "64", "--limit-val", "32", "--batch-size", "32", "--threads", "1",
                                 "--no-report", "--batch-trials", "2", *extra]
    assert run_main(sweep.main, argv("a", "--optimizers", "adam", "paper-adam")) == 0
    out = capsys.readouterr().out
    assert "adam: --stacked-step would update its batched runs" in out and "paper-adam: --stacked-step" not in out
    assert run_main(sweep.main, argv("b", "--optimizers", "adam", "--stacked-step")) == 0
    assert "--stacked-step would" not in capsys.readouterr().out
