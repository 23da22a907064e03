"""The training loop: epoch 0 (an evaluation of the untrained model), then every epoch, each
saved whole (checkpoint, then metrics) before the next; one run, or many trained as one stacked
model (stacking.py), each recorded as its solo run would be. Ctrl-C and SIGTERM stop after the
current step with the last complete epoch kept."""
import contextlib
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from optstudy.core.cli import EXIT_DIVERGED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, UserError
from optstudy.core.settings import RunConfig
from optstudy.data import datasets
from optstudy.records import store as records
from optstudy.training import optimizers, stacking, workloads
from optstudy.training.probes import Probes

# Steps between the host syncs that look for a NaN/inf loss. On the CPU a sync costs nothing; on
# an accelerator it would stall the queue, so there the check waits for the end of the epoch.
CPU_DIVERGENCE_CHECK_EVERY = 32


@dataclass(frozen=True)
class Settings:
    """What the training step and the evaluation need to know, resolved from the flags."""
    batch_size: int
    precision: str = "fp32"      # fp32 or bf16 (never auto: resolved before)
    quiet: bool = True
    eval_batch_size: int = 1000  # the workload's



@dataclass
class Member:
    """One run, a member of the stack that trains it (a run alone is its only member): its
    settings, its optimizer's settings, its folder, record and random streams."""
    args: RunConfig
    hyper: dict
    run_dir: Path
    checkpoint: dict = None
    config: dict = None
    metrics: dict = None
    generator: torch.Generator = None    # data order (and augmentation), as in a solo run
    noise: torch.Generator = None        # dropout and sampling noise of a batched member (a solo run: the global one)
    diverged: bool = False



def command_line(argv):
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "src/train.py", *argv])



class StopRequest:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step; a second one kills."""

    def __init__(self, handle_signals=True):
        self.signum = None
        if handle_signals and threading.current_thread() is threading.main_thread():  # signals only work there
            self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        else:
            self.previous = {}

    def handle(self, signum, frame):
        self.signum = signum
        self.restore()

    def restore(self):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        self.previous = {}


@dataclass
class Run:
    """What is trained and where it is recorded, so that the loop's helpers take one argument: one
    run, or K members stacked into one model (each member's own model in `models`)."""
    model: torch.nn.Module       # the run's model, or the members' stacking.Stack
    workload: workloads.Workload
    data: datasets.Data
    inputs: datasets.Inputs
    settings: Settings
    members: list                # [Member]: one for an ordinary run
    models: list                 # each member's own model (a stacked member's parameters are views)
    resume_hint: bool = True     # on Ctrl-C, print the train.py command that resumes (a sweep prints its own)
    fast_step: object = None     # a stacking.StackedStep standing in for optimizer.step (--stacked-step)
    resumable_checked: bool = False    # the first checkpoint with optimizer state was read back
    probes: Probes = None        # what a write-up measures inside an epoch (probes.py), or None

    @property
    def args(self):
        return self.members[0].args      # the settings every member of a batch shares

    @property
    def stacked(self):
        return len(self.members) > 1

    @property
    def objective(self):
        return workloads.OBJECTIVES[self.workload.objective]

    def train_batches(self):
        if self.stacked:
            return stacking.train_batches(self.data, self.inputs, self.settings.batch_size,
                                         [t.generator for t in self.members])
        return datasets.train_batches(self.data, self.inputs, self.settings.batch_size, self.members[0].generator)

    def eval_batches(self, x, y):
        split = stacking.eval_batches if self.stacked else datasets.eval_batches
        return split(x, y, self.settings.eval_batch_size, self.inputs)

    def accuracies(self, outputs, labels):
        """Per member: percent correct over the logits batches (None without accuracy)."""
        return workloads.accuracies(outputs, labels, len(self.members))

    def live(self):
        return [(k, t) for k, t in enumerate(self.members) if not t.diverged]


def train(run, device):
    """Epoch 0 (an evaluation of the untrained model), then every epoch, saving after each."""
    args = run.args
    optimizer = build_optimizer(run)
    check_stacked_step(run, optimizer)
    schedule = workloads.make_schedule(args.lr_schedule, optimizer)
    for t in run.members:
        t.generator = torch.Generator().manual_seed(t.args.seed)     # data order and augmentation
    if run.members[0].checkpoint is None:
        steps = datasets.batches_per_epoch(len(run.data.train_y), args.batch_size)
        for t in run.members:
            t.metrics = records.new_metrics(steps, run.workload.has_accuracy, t.config["run_id"], run.data.val_y is not None)
    else:
        restore(run, optimizer, schedule, device)
    if Probes.wanted(args):
        data = run.data
        run.probes = Probes(args, run.members[0].metrics, len(data.train_y),
                            lambda: evaluate(run, data.train_x, data.train_y)[0][0], device)
    for t in run.members:
        if t.checkpoint is None:
            records.set_aside(t.run_dir)                 # --overwrite: the old record, whole, until epoch 0 is saved
        records.save_json(t.config, t.run_dir / records.CONFIG)
    if not run.members[0].metrics["epoch"]:
        record_epoch(run, 0, evaluate_splits(run, None), 0.0, optimizer)
        save(run, optimizer, schedule, device)
        for t in run.members:
            records.discard_replaced(t.run_dir)          # the overwritten record, kept aside until now
    try:
        return train_epochs(run, optimizer, schedule, device)
    except OptimizerFailed as err:
        return failed(run, err)


def train_epochs(run, optimizer, schedule, device):
    """Every epoch after the last one saved; stops on a signal, or when every run has diverged."""
    step_model = compiled(run.model, run.args.compile)
    stop = StopRequest()
    try:
        for epoch in range(run.members[0].metrics["epoch"][-1] + 1, run.args.epochs + 1):
            start = time.perf_counter()
            train_points = train_epoch(step_model, optimizer, run, epoch, stop)
            if stop.signum is not None:
                return interrupted(run, stop.signum)
            if not run.live():
                return EXIT_DIVERGED
            seconds = elapsed(start, device) - (run.probes.eval_seconds if run.probes else 0.0)   # training only
            record_epoch(run, epoch, evaluate_splits(run, train_points), seconds, optimizer)
            schedule.step()
            save(run, optimizer, schedule, device)
        for _, t in run.live():
            t.metrics["status"] = "complete"
            records.save_metrics(t.metrics, t.run_dir)
        return EXIT_OK
    finally:
        stop.restore()


def check_stacked_step(run, optimizer):
    """--stacked-step: the stacked update for runs trained together; refused, before anything is
    written, for an optimizer it cannot update (also on a single run, where it would do nothing)."""
    if not run.args.stacked_step:
        return
    why = stacking.stacked_step_refusal(optimizer)
    if why:
        raise UserError(why)
    if run.stacked:
        run.fast_step = stacking.StackedStep(optimizer, run.model)


class OptimizerFailed(Exception):
    """The optimizer's own code raised, or called sys.exit, in step(): its run fails."""


def optimizer_step(stepper, stop):
    """stepper.step(); whatever the optimizer's code raises or exits with is OptimizerFailed (a
    second Ctrl-C, after the first asked to stop, stays an interrupt)."""
    try:
        stepper.step()
    except KeyboardInterrupt:
        if stop.signum is not None:
            raise
        raise OptimizerFailed("KeyboardInterrupt") from None
    except UserError:
        raise
    except (Exception, SystemExit) as err:
        raise OptimizerFailed(f"{type(err).__name__}: {err}") from None


def failed(run, err):
    """Each live run's record says 'failed' (its last complete epoch stays, to --resume once the
    optimizer is mended); one line says why."""
    for _, t in run.live():
        t.metrics["status"] = "failed"
        records.save_metrics(t.metrics, t.run_dir)
    epoch = run.members[0].metrics["epoch"][-1] + 1
    raise UserError(f"optimizer {run.args.optimizer!r} failed in step() during epoch {epoch}: {err}; the record says "
                    "failed, its last complete epoch is kept (--resume continues it)")


def build_optimizer(run):
    """One optimizer; a batch gives each member its own parameter group with its own settings, so
    that any torch.optim.Optimizer treats each member as its solo run would."""
    t = run.members[0]
    if not run.stacked:
        return optimizers.build(t.args.optimizer, run.model.parameters(), t.hyper)
    groups = [{"params": list(m.parameters()), **member.hyper} for m, member in zip(run.models, run.members)]
    return optimizers.build(t.args.optimizer, groups, t.hyper)


def record_epoch(run, epoch, points, seconds, optimizer):
    """Each live member's figures of the epoch into its metrics, and its line on the console."""
    for k, t in run.live():
        records.record_point(t.metrics, epoch, points[k], seconds, optimizer.param_groups[k]["lr"])
        prefix = f"[{k + 1}/{len(run.members)}] " if run.stacked else ""
        print(prefix + summary(t.metrics, t.args))


def train_epoch(model, optimizer, run, epoch, stop):
    """One pass over the training set -> per member (sample-weighted mean loss, accuracy % or None).
    Losses stay on the device (no per-step host sync); a non-finite loss is looked for every
    CPU_DIVERGENCE_CHECK_EVERY steps on the CPU, and at the end of the epoch elsewhere. Either way
    the first bad step is the one recorded. A step does nothing but the model's own work and three
    list appends: the small workloads' steps take well under a millisecond. A member that diverges
    is recorded and frozen (its gradients dropped); the others go on."""
    model.train()
    n = len(run.data.train_y)
    steps = datasets.batches_per_epoch(n, run.settings.batch_size)
    device = run.data.train_y.device
    check_every = CPU_DIVERGENCE_CHECK_EVERY if device.type == "cpu" else steps
    probes = run.probes
    if probes:
        probes.start_epoch(epoch)
    losses, outputs, labels = [], [], []
    for i, (x, y) in enumerate(tqdm(run.train_batches(), total=steps, desc="batches", disable=run.settings.quiet,
                                    leave=False)):
        with autocast(device, run.settings.precision):
            loss, out = run.objective(model, x, y)
        stepper = run.fast_step or optimizer
        stepper.zero_grad(set_to_none=True)
        (loss if loss.dim() == 0 else loss.sum()).backward()     # members' losses are independent: one backward
        freeze_diverged(run)
        if probes:
            probes.step(lambda: optimizer_step(stepper, stop))
        else:
            optimizer_step(stepper, stop)
        losses.append(loss.detach())
        outputs.append(out)
        labels.append(y)
        if probes:
            probes.after_step(model, len(y))
        if (i + 1) % check_every == 0 or i + 1 == steps:
            record_non_finite(run, losses, epoch, since=(i // check_every) * check_every)
            if not run.live():
                return None
        if stop.signum is not None:
            return None
    losses = torch.stack(losses).view(steps, -1)                 # [steps, members]
    # Each minibatch loss is a mean over its samples; weight by batch size for the epoch mean.
    sizes = torch.full((steps, 1), float(run.settings.batch_size), device=device)
    sizes[-1] = n - run.settings.batch_size * (steps - 1)
    means = ((losses * sizes).sum(0) / n).tolist()
    accuracies = run.accuracies(outputs, labels)
    for k, t in run.live():
        t.metrics["iter_loss"].extend(losses[:, k].tolist())
    if probes:
        probes.finish_epoch(losses[:, 0].tolist(), outputs, labels)
    return [(means[k], accuracies[k]) for k in range(len(run.members))]


def freeze_diverged(run):
    """A diverged member's parameters get no more updates: optimizers skip a parameter without grad,
    and the stacked step (--stacked-step) leaves out its frozen members."""
    for k, t in enumerate(run.members):
        if t.diverged:
            for p in run.models[k].parameters():
                p.grad = None
    if run.fast_step is not None:
        run.fast_step.frozen = {k for k, t in enumerate(run.members) if t.diverged}


def record_non_finite(run, losses, epoch, since=0):
    """Record every live member whose losses[since:] hold a NaN/inf (earlier ones were checked) as
    diverged at its first bad step."""
    window = torch.stack(losses[since:]).view(len(losses) - since, -1)
    finite = torch.isfinite(window)
    if finite.all():
        return
    for k, t in run.live():
        if not finite[:, k].all():
            first = since + int((~finite[:, k]).nonzero()[0])
            record_divergence(run, k, epoch, torch.stack(losses[:first + 1]).view(first + 1, -1)[:, k].tolist())


def autocast(device, precision):
    """bf16 autocast, or no context at all for fp32 (entering a disabled autocast costs ~5 us a step)."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def compiled(model, mode):
    if mode == "off":
        return model
    return torch.compile(model, mode="reduce-overhead" if mode == "cudagraphs" else None)


@torch.inference_mode()
def evaluate(run, x, y):
    """Per member (mean loss, accuracy % or None) over all of x, without augmentation or dropout."""
    run.model.eval()
    loss_sum = torch.zeros(len(run.members) if run.stacked else (), device=y.device)
    outputs, labels = [], []
    for xb, yb in run.eval_batches(x, y):
        with autocast(yb.device, run.settings.precision):
            loss, out = run.objective(run.model, xb, yb)
        loss_sum += loss * len(yb)
        outputs.append(out)
        labels.append(yb)
    return [(s / len(y), acc) for s, acc in zip(loss_sum.view(-1).tolist(), run.accuracies(outputs, labels))]


def evaluate_splits(run, train_points):
    """Per member {split: (loss, accuracy)}: the epoch's training figures (None: evaluate the
    training set, as at epoch 0), the validation split (if held out) and the test split. Nothing
    selects on the test split; it is recorded to be reported."""
    data = run.data
    splits = {"train": train_points or evaluate(run, data.train_x, data.train_y)}
    if data.val_y is not None:
        splits["val"] = evaluate(run, data.val_x, data.val_y)
    splits["test"] = evaluate(run, data.test_x, data.test_y)
    return [{split: points[k] for split, points in splits.items()} for k in range(len(run.members))]


def elapsed(start, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def quiet(args):
    return args.quiet or not sys.stderr.isatty()


# ---------------------------------------------------------------- the record

def summary(metrics, args):
    m = {k: v[-1] for k, v in metrics.items() if isinstance(v, list) and v}
    acc = lambda split: f" acc {m[split + '_acc']:5.2f}%" if split + "_acc" in m else ""
    splits = "  ".join(f"{s} loss {m[s + '_loss']:.4f}{acc(s)}" for s in records.SPLITS if s + "_loss" in m)
    return f"{args.optimizer} epoch {m['epoch']:>3}/{args.epochs}  {splits}  {m['seconds']:.1f}s"


def save(run, optimizer, schedule, device):
    """Each live member's checkpoint and metrics, in a solo run's format (its part of a batch's
    optimizer and schedule, its own model tensors and random streams)."""
    optimizer_state, schedule_state = optimizer.state_dict(), schedule.state_dict()
    cuda = device.type == "cuda"
    for k, t in run.live():
        if run.stacked:
            model_state = stacking.member_model_state(run.model, k)
            own_optimizer = stacking.group_of(optimizer_state, k)
            own_schedule = stacking.schedule_of(schedule_state, k, len(run.members))
            streams = {"torch": torch.get_rng_state() if cuda else t.noise.get_state(),
                       "cuda": t.noise.get_state() if cuda else None}
        else:
            model_state, own_optimizer, own_schedule = run.model.state_dict(), optimizer_state, schedule_state
            streams = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}
        state = {"model": model_state, "optimizer": own_optimizer, "schedule": own_schedule,
                 "epoch": t.metrics["epoch"][-1], "metrics": t.metrics, "args": t.args.as_args(),
                 "rng": {**streams, "data": t.generator.get_state()}}
        records.save_checkpoint(t.run_dir, state, t.metrics)
        if not run.resumable_checked and own_optimizer["state"]:
            warn_if_unresumable(t.run_dir)
    run.resumable_checked = run.resumable_checked or bool(optimizer_state["state"])


def warn_if_unresumable(run_dir):
    """The first checkpoint with optimizer state is read back as --resume reads it (tensors and
    plain values only): an optimizer that keeps other objects in its state is said now, in one
    line, not when a resume is refused."""
    try:
        torch.load(run_dir / records.CHECKPOINT, weights_only=True, map_location="cpu")
    except Exception as err:
        reason = str(err).strip().splitlines()[-1][:160] if str(err).strip() else type(err).__name__
        print(f"warning: {run_dir}: --resume could not read this run's checkpoint back ({reason}): its optimizer "
              "keeps something other than tensors and plain values in its state; the run trains on", file=sys.stderr)


def restore(run, optimizer, schedule, device):
    """Continue from the members' checkpoints (their models were restored when built)."""
    checkpoints = [t.checkpoint for t in run.members]
    if run.stacked:
        optimizer.load_state_dict(stacking.merge_groups([c["optimizer"] for c in checkpoints]))
        schedule.load_state_dict(stacking.merge_schedules([c["schedule"] for c in checkpoints]))
    else:
        optimizer.load_state_dict(checkpoints[0]["optimizer"])
        schedule.load_state_dict(checkpoints[0]["schedule"])
        torch.set_rng_state(checkpoints[0]["rng"]["torch"])
        if checkpoints[0]["rng"]["cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(checkpoints[0]["rng"]["cuda"], device)
    for t in run.members:
        t.generator.set_state(t.checkpoint["rng"]["data"])
        t.metrics = records.upgrade(t.checkpoint["metrics"])
        t.metrics["status"] = "running"
    print(f"resuming from epoch {run.members[0].metrics['epoch'][-1]}")


def record_divergence(run, k, epoch, losses):
    t = run.members[k]
    t.diverged = True
    metrics = t.metrics
    step = (epoch - 1) * metrics["iters_per_epoch"] + len(losses)
    metrics["iter_loss"].extend(losses)
    metrics["status"] = "diverged"
    metrics["diverged"] = {"epoch": epoch, "step": step}
    records.save_metrics(metrics, t.run_dir)
    outcome = "stopped" if not run.stacked else "frozen; the other members go on"
    print(f"{f'{t.run_dir}: ' if run.stacked else ''}diverged: the training loss became {losses[-1]} at epoch {epoch}, "
          f"step {step}; {outcome} (exit {EXIT_DIVERGED})", file=sys.stderr)


def interrupted(run, signum):
    for _, t in run.live():
        t.metrics["status"] = "interrupted"
        records.save_metrics(t.metrics, t.run_dir)
    if run.resume_hint and not run.stacked:
        t = run.members[0]
        argv = [a for a in records.load_config(t.run_dir / records.CONFIG)["argv"] if a not in ("--overwrite", "--resume")]
        resume = command_line(argv + ["--resume"])
        print(f"\ninterrupted; epoch {t.metrics['epoch'][-1]} is saved in {t.run_dir}. Resume with:\n  {resume}",
              file=sys.stderr)
    return EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
