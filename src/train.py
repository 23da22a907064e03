"""Train one workload with one optimizer and record every epoch.

    python src/train.py --optimizer adam                       # the tutorial's reference run (cifar10-cnn)
    python src/train.py --workload mnist-logreg --optimizer adagrad
    python src/train.py --optimizer sgd --dataset synthetic --epochs 3
    python src/train.py --list-workloads / --list-optimizers

A run lives in <output-dir>/<run-name>/:
    config.json     resolved settings, command line, versions, device, git commit, start time
    metrics.json    per-epoch metrics (epoch 0 = before training) and every minibatch loss, rewritten
                    atomically after every epoch: what plot, report and sweep read
    metrics.pkl     the same dict with joblib
    checkpoint.pt   model, optimizer, schedule, metrics and every RNG state after the last complete epoch
Exit status: 0 done, 2 bad input, 3 diverged (NaN/inf loss), 130 Ctrl-C, 143 SIGTERM.
"""
import argparse
import contextlib
import datetime
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import data as datasets
import model as models
import optimizers
import provenance
import records
import workloads
from cli import (EXIT_DIVERGED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, Parser, UserError, non_negative_float,
                 positive_float, positive_int, run_main, seed_int)

# Steps between the host syncs that look for a NaN/inf loss. On the CPU a sync costs nothing; on
# an accelerator it would stall the queue, so there the check waits for the end of the epoch.
CPU_DIVERGENCE_CHECK_EVERY = 32
DROPOUT_RATE = 0.5               # every dropout of every model (the paper gives no rate; our choice)
REPO = provenance.REPO


def build_parser():
    p = Parser(description="Train one workload (default: the Adam paper's CIFAR-10 CNN) with one optimizer.")
    p.add_argument("--workload", choices=workloads.names(), default=workloads.DEFAULT,
                   help=f"dataset + model + loss + defaults (default: {workloads.DEFAULT}; see --list-workloads)")
    p.add_argument("--list-workloads", action="store_true", help="print the workloads and their defaults, then exit")
    p.add_argument("--optimizer", default="adam",
                   help=f"{', '.join(optimizers.names())}, or your own: module.path:ClassName or "
                        "path/to/file.py:ClassName (default: adam)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any constructor argument of the optimizer, a Python literal; repeatable "
                        "(e.g. --opt amsgrad=True --opt betas=(0.9,0.95))")
    p.add_argument("--list-optimizers", action="store_true", help="print the optimizers and their defaults, then exit")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the workload's; 45 for cifar10-cnn)")
    p.add_argument("--batch-size", type=positive_int, help="minibatch size (default: the workload's; 128 for most)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's, 1e-3 for adam and sgd)")
    p.add_argument("--lr-schedule", choices=workloads.LR_SCHEDULES,
                   help="constant, or inv-sqrt: lr/sqrt(epoch) as the paper's section 6.1 (default: the workload's)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 weight decay (default: the workload's, else the optimizer's: the tutorial's 5e-4 for adam, 0 for sgd)")
    p.add_argument("--betas", type=non_negative_float, nargs=2, metavar=("B1", "B2"),
                   help="Adam-family betas (default: 0.9 0.999)")
    p.add_argument("--eps", type=positive_float, help="epsilon of adaptive optimizers (default: the optimizer's)")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="paper-adam/paper-adamax only: drop the 1/(1-beta^t) corrections (paper section 6.4)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of init, dropout, data order and augmentation (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dataset", help="the workload's dataset, another of the same shape, or synthetic (default: the workload's)")
    p.add_argument("--data-dir", help="image folder DIR/{train,test}/<class>/*.png|jpg; overrides --dataset")
    p.add_argument("--data-root", default=str(REPO / "input" / "data"),
                   help="where downloaded archives and decoded caches live (default: input/data)")
    p.add_argument("--limit-train", type=positive_int, help="use a fixed random subset of N training samples (default: all)")
    p.add_argument("--limit-test", "--limit-val", dest="limit_val", type=positive_int,
                   help="use a fixed random subset of N test samples (default: all; --limit-val is the old name)")
    p.add_argument("--val-split", type=non_negative_float,
                   help="hold out a validation split of the training set: N samples, or a fraction (0.1 = 10%%); "
                        "the same samples for every run and seed; 0 = none (default: none)")
    p.add_argument("--dropout", help="where dropout goes, per model (default: the model's; adam-cnn: tutorial|paper|none)")
    p.add_argument("--dropout-rate", type=float, default=DROPOUT_RATE, help=f"dropout probability (default: {DROPOUT_RATE})")
    p.add_argument("--preprocess", choices=workloads.PREPROCESS, default="standardize",
                   help="image inputs: per-channel standardisation, or ZCA whitening fitted on the training split (default: standardize)")
    p.add_argument("--zca-eps", type=positive_float, default=datasets.ZCA_EPS,
                   help=f"ZCA: added to the covariance eigenvalues, pixels in [0, 1] (default: {datasets.ZCA_EPS})")
    p.add_argument("--precision", choices=provenance.PRECISIONS, default="fp32",
                   help="bf16 = bf16 autocast; auto = bf16 only where it is fast (native bf16), else fp32 (default: fp32)")
    p.add_argument("--compile", choices=["off", "on", "cudagraphs"], default="off",
                   help="torch.compile the model; cudagraphs = mode reduce-overhead (default: off)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format for convolutional models (default: on)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="allow TF32 for fp32 matmuls on CUDA (default: on)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice, one per physical core)")
    p.add_argument("--output-dir", default="outputs", help="parent folder of run records (default: outputs)")
    p.add_argument("--run-name", help="run folder name (default: <optimizer>_seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in its folder from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")
    return p


@dataclass(frozen=True)
class Settings:
    """What the training step and the evaluation need to know, resolved from the flags."""
    batch_size: int
    precision: str = "fp32"      # fp32 or bf16 (never auto: resolved before)
    quiet: bool = True
    eval_batch_size: int = 1000  # the workload's


def main(argv=None, resume_hint=True):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.list_optimizers or args.list_workloads:
        optimizers.lookup(args.optimizer)               # run.sh checks its names this way
        extra = [args.optimizer] if optimizers.is_external(args.optimizer) else []
        print(optimizers.table(extra) if args.list_optimizers else workloads.table())
        return EXIT_OK
    workload = workloads.WORKLOADS[args.workload]
    resolve_workload_defaults(args, workload)
    hyper = optimizers.resolve(args.optimizer, optimizer_overrides(args, workload), optimizers.parse_opts(args.opt))
    device = provenance.pick_device(args.device)
    settings = Settings(args.batch_size, provenance.resolve_precision(args.precision, device), quiet(args),
                        workload.eval_batch_size)
    run_dir = Path(args.output_dir) / (args.run_name or f"{records.optimizer_folder(args.optimizer)}_seed{args.seed}")
    if args.resume:
        records.check_resumable(run_dir)              # a refusal creates nothing, not even the folder
    with records.held(run_dir):                       # one process per run folder
        checkpoint = resumable_checkpoint(run_dir, args)
        if checkpoint is not None and checkpoint["epoch"] >= args.epochs:
            return already_done(run_dir, checkpoint["metrics"])
        data, inputs = load_data(workload, device, args.dataset, args.data_dir, args.data_root, args.limit_train,
                                 args.limit_val, args.preprocess, args.channels_last, args.zca_eps, args.val_split)
        if args.batch_size > len(data.train_y):
            raise UserError(f"--batch-size {args.batch_size} is larger than the {len(data.train_y)} training samples")
        configure_backends(args.threads, args.tf32, device)
        torch.manual_seed(args.seed)
        model = build_model(workload, data, device, args.dropout, args.dropout_rate, args.channels_last)
        run = Run(model, workload, data, inputs, settings, run_dir, args, resume_hint)
        check_model_accepts(run)
        config = make_config(args, argv, workload, hyper, settings, device, data, model, run_dir, checkpoint)
        return train(run, hyper, device, config, checkpoint)


def already_done(run_dir, metrics):
    """--resume of a run that has all its epochs: nothing to train. Only a run stopped between its
    last checkpoint and the word 'complete' gets that word."""
    if metrics["status"] not in ("complete", "diverged"):
        metrics["status"] = "complete"
        records.save_metrics(metrics, run_dir)
    print(f"{run_dir} already has its {metrics['epoch'][-1]} epochs: nothing to do")
    return EXIT_OK


def resumable_checkpoint(run_dir, args):
    """The checkpoint that --resume continues (None for a new run); refuses what cannot be resumed."""
    if records.prepare_run_dir(run_dir, args.resume, args.overwrite) != "resume":
        return None
    config = records.load_config(run_dir / records.CONFIG)
    checkpoint = records.load_checkpoint(run_dir, vars(args))
    recorded, now = config["optimizer"].get("sha256"), optimizers.provenance(args.optimizer)["sha256"]
    if optimizers.is_external(args.optimizer) and recorded != now:
        raise UserError(f"cannot resume {run_dir}: the optimizer's source changed since the run started "
                        f"(sha256 {str(recorded)[:12]} -> {str(now)[:12]}); restore it or start again with --overwrite")
    done = checkpoint["epoch"]
    if args.epochs < done:
        raise UserError(f"{run_dir} already has {done} epochs; --epochs {args.epochs} cannot undo them "
                        f"(give --epochs {done} or more)")
    return checkpoint


# ---------------------------------------------------------------- setup

def resolve_workload_defaults(args, workload):
    """Fill the flags left unset from the workload, and refuse the ones it cannot take."""
    spec = models.MODELS[workload.model]
    args.epochs = args.epochs or workload.epochs
    args.batch_size = args.batch_size or workload.batch_size
    args.lr_schedule = args.lr_schedule or workload.lr_schedule
    args.dataset = args.dataset or workload.dataset
    args.dropout = args.dropout or spec.dropouts[0]
    args.val_split = args.val_split or None           # 0 = no split = the flag not given (one identity)
    if args.val_split and args.val_split > 1 and args.val_split != int(args.val_split):
        raise UserError(f"--val-split {args.val_split:g}: give a whole number of samples or a fraction below 1")
    if args.dropout not in spec.dropouts:
        raise UserError(f"--dropout {args.dropout}: workload {args.workload} (model {workload.model}) "
                        f"takes {', '.join(spec.dropouts)}")
    if not 0 <= args.dropout_rate < 1:
        raise UserError(f"--dropout-rate {args.dropout_rate} must be in [0, 1)")
    if args.dataset not in ("synthetic", workload.dataset, *workload.datasets):
        raise UserError(f"--dataset {args.dataset}: workload {args.workload} takes "
                        f"{', '.join((workload.dataset, *workload.datasets, 'synthetic'))}")
    if args.data_dir is not None and not workload.image_folders:
        raise UserError(f"--data-dir: workload {args.workload} does not read image folders")
    if args.preprocess == "zca" and workload.scale != "standardize":
        raise UserError(f"--preprocess zca: workload {args.workload} has no standardised image inputs")


def hyperparameters(argv):
    """Every constructor argument the optimizer of a run with these flags gets (the sweep checks
    its plan with the exact flags of each run)."""
    args = build_parser().parse_args(argv)
    workload = workloads.WORKLOADS[args.workload]
    resolve_workload_defaults(args, workload)
    hyper = optimizers.resolve(args.optimizer, optimizer_overrides(args, workload), optimizers.parse_opts(args.opt))
    return {**optimizers.lookup(args.optimizer).fixed, **hyper}


def optimizer_overrides(args, workload):
    """The hyperparameter flags as given, with the workload's weight decay where the user gave none."""
    weight_decay = args.weight_decay
    if weight_decay is None and "weight_decay" in optimizers.lookup(args.optimizer).defaults:
        weight_decay = workload.weight_decay          # a user optimizer without weight_decay gets none
    return dict(lr=args.lr, weight_decay=weight_decay, betas=args.betas, eps=args.eps,
                bias_correction=False if args.no_bias_correction else None)


def load_data(workload, device, dataset=None, data_dir=None, data_root=REPO / "input" / "data", limit_train=None,
              limit_val=None, preprocess="standardize", channels_last=True, zca_eps=datasets.ZCA_EPS, val_split=None):
    """The run's data on the device, and the Inputs that turn its samples into model inputs."""
    data = datasets.load(dataset or workload.dataset, data_dir, data_root, limit_train, limit_val,
                         synthetic=workload.synthetic, val_split=val_split)
    data = data.to(device)
    scale = "zca" if preprocess == "zca" else workload.scale
    inputs = datasets.make_inputs(data, scale, workload.augment, channels_last and is_conv(workload), zca_eps)
    return datasets.prepare(data, inputs)


def is_conv(workload):
    return models.MODELS[workload.model].input == "image"


def build_model(workload, data, device, dropout=None, dropout_rate=DROPOUT_RATE, channels_last=True):
    """The workload's model for this data (its sample shape and classes), on the device."""
    model = models.build(workload.model, data.sample_shape, len(data.classes), dropout, dropout_rate).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last and is_conv(workload) else model


def check_model_accepts(run):
    """One forward pass on two samples before any work, so that data of the wrong shape for the
    model (8x8 images for the CNN) is one line now, not a traceback in the middle of epoch 0.
    It draws no random numbers that training would see."""
    data = run.data
    x, y = next(datasets.eval_batches(data.train_x, data.train_y, 2, run.inputs))
    devices = [y.device] if y.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(), autocast(y.device, run.settings.precision):
            run.objective(run.model.eval(), x, y)
    except RuntimeError as err:
        reason = str(err).splitlines()[0][:160]
        raise UserError(f"the samples ({'x'.join(map(str, data.sample_shape))}) do not fit this workload's model "
                        f"({reason})") from None


def make_config(args, argv, workload, hyper, settings, device, data, model, run_dir, checkpoint):
    """The self-describing part of the record: enough to rerun it and to know what ran."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if checkpoint is not None:
        config = records.load_config(run_dir / records.CONFIG)
        config["args"]["epochs"] = args.epochs             # the record says what the run is now
        config.setdefault("resumed", []).append({"time": now, "command": command_line(argv),
                                                 "from_epoch": checkpoint["epoch"]})
        return config
    return {
        "run_id": records.new_run_id(),       # also in the metrics: a reader never mixes two runs' files
        "args": vars(args),
        "workload": {"name": args.workload, "objective": workload.objective, "target": list(workload.target),
                     "paper": workload.paper},
        "optimizer": {"name": args.optimizer, "hyperparameters": hyper, "fixed": {k: v for k, v in optimizers.lookup(args.optimizer).fixed.items() if k not in hyper},
                      **optimizers.provenance(args.optimizer)},
        "precision": {"requested": args.precision, "used": settings.precision,
                      "native_bf16": provenance.native_bf16(device)},
        "command": command_line(argv),
        "argv": argv,
        "versions": provenance.versions(),
        "device": provenance.describe_device(device),
        "data": {"source": data.source, "train_size": len(data.train_y), "test_size": len(data.test_y),
                 "val_size": 0 if data.val_y is None else len(data.val_y),
                 "val": "held out of the training set (--val-split)" if data.val_y is not None else "none",
                 "classes": data.classes, "sample_shape": list(data.sample_shape), "mean": data.mean, "std": data.std,
                 "preprocess": args.preprocess},
        "model": {"name": workload.model, "parameters": models.count_parameters(model), "dropout": args.dropout},
        "git": provenance.git_state(),
        "start_time": now,
    }


def command_line(argv):
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "src/train.py", *argv])


def configure_backends(threads, tf32, device):
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        # Same seed, same device, same numbers: no autotuned, nondeterministic conv algorithms.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


# ---------------------------------------------------------------- training

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


class Diverged(Exception):
    """The first non-finite minibatch loss: args = (step index in the epoch, the epoch's losses so far)."""


@dataclass
class Run:
    """What one run trains and where it records it, so that the loop's helpers take one argument."""
    model: torch.nn.Module
    workload: workloads.Workload
    data: datasets.Data
    inputs: datasets.Inputs
    settings: Settings
    run_dir: Path
    args: argparse.Namespace     # the resolved flags, saved in the checkpoint for the resume check
    resume_hint: bool = True     # on Ctrl-C, print the train.py command that resumes (a sweep prints its own)

    @property
    def objective(self):
        return workloads.OBJECTIVES[self.workload.objective]


def train(run, hyper, device, config, checkpoint):
    """Epoch 0 (an evaluation of the untrained model), then every epoch, saving after each."""
    args = run.args
    optimizer = optimizers.build(args.optimizer, run.model.parameters(), hyper)
    schedule = workloads.make_schedule(args.lr_schedule, optimizer)
    generator = torch.Generator().manual_seed(args.seed)    # data order and augmentation
    if checkpoint is None:
        steps = datasets.batches_per_epoch(len(run.data.train_y), args.batch_size)
        metrics = records.new_metrics(steps, run.workload.has_accuracy, config["run_id"], run.data.val_y is not None)
    else:
        metrics = restore(checkpoint, run.model, optimizer, schedule, generator, device)
    step_model = compiled(run.model, args.compile)
    if checkpoint is None:
        records.set_aside(run.run_dir)                   # --overwrite: the old record, whole, until epoch 0 is saved
    records.save_json(config, run.run_dir / records.CONFIG)
    if not metrics["epoch"]:
        train_point = evaluate(run.model, run.objective, run.data.train_x, run.data.train_y, run.inputs, run.settings)
        records.record_point(metrics, 0, evaluate_splits(run, train_point), 0.0, current_lr(optimizer))
        save(run, optimizer, schedule, generator, metrics, device)
        records.discard_replaced(run.run_dir)            # the overwritten record, kept aside until now
        print(summary(metrics, args))
    stop = StopRequest()
    try:
        for epoch in range(metrics["epoch"][-1] + 1, args.epochs + 1):
            start = time.perf_counter()
            try:
                train_point = train_epoch(step_model, optimizer, run.objective, run.data, run.inputs, generator,
                                          run.settings, metrics, stop)
            except Diverged as err:
                return record_divergence(metrics, run.run_dir, epoch, err.args[1])
            if stop.signum is not None:
                return interrupted(metrics, run.run_dir, stop.signum, run.resume_hint)
            seconds = elapsed(start, device)
            records.record_point(metrics, epoch, evaluate_splits(run, train_point), seconds, current_lr(optimizer))
            schedule.step()
            save(run, optimizer, schedule, generator, metrics, device)
            print(summary(metrics, args))
        metrics["status"] = "complete"
        records.save_metrics(metrics, run.run_dir)
        return EXIT_OK
    finally:
        stop.restore()


def train_epoch(model, optimizer, objective, data, inputs, generator, settings, metrics, stop):
    """One pass over the training set -> (sample-weighted mean loss, accuracy % or None). Losses stay
    on the device (no per-step host sync); a non-finite loss is looked for every
    CPU_DIVERGENCE_CHECK_EVERY steps on the CPU, and at the end of the epoch elsewhere. Either way
    the first bad step is the one recorded. A step does nothing but the model's own work and three
    list appends: the small workloads' steps take well under a millisecond."""
    model.train()
    n = len(data.train_y)
    steps = datasets.batches_per_epoch(n, settings.batch_size)
    device = data.train_y.device
    check_every = CPU_DIVERGENCE_CHECK_EVERY if device.type == "cpu" else steps
    losses, outputs, labels = [], [], []
    batches = datasets.train_batches(data, inputs, settings.batch_size, generator)
    for i, (x, y) in enumerate(tqdm(batches, total=steps, desc="batches", disable=settings.quiet, leave=False)):
        with autocast(device, settings.precision):
            loss, out = objective(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        outputs.append(out)
        labels.append(y)
        if (i + 1) % check_every == 0 or i + 1 == steps:
            check_finite(losses, since=(i // check_every) * check_every)
        if stop.signum is not None:
            return None, None
    losses = torch.stack(losses)
    # Each minibatch loss is a mean over its samples; weight by batch size for the epoch mean.
    sizes = torch.full((steps,), float(settings.batch_size), device=device)
    sizes[-1] = n - settings.batch_size * (steps - 1)
    metrics["iter_loss"].extend(losses.tolist())
    return (losses * sizes).sum().item() / n, workloads.accuracy(outputs, labels)


def check_finite(losses, since=0):
    """Raise Diverged at the first non-finite loss among losses[since:] (earlier ones were checked)."""
    window = torch.stack(losses[since:])
    finite = torch.isfinite(window)
    if not finite.all():
        first = since + int((~finite).nonzero()[0])
        raise Diverged(first, torch.stack(losses[:first + 1]).tolist())


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
def evaluate(model, objective, x, y, inputs, settings):
    """(mean loss, accuracy % or None) over all of x, without augmentation or dropout."""
    model.eval()
    loss_sum = torch.zeros((), device=y.device)
    outputs, labels = [], []
    for xb, yb in datasets.eval_batches(x, y, settings.eval_batch_size, inputs):
        with autocast(yb.device, settings.precision):
            loss, out = objective(model, xb, yb)
        loss_sum += loss * len(yb)
        outputs.append(out)
        labels.append(yb)
    return loss_sum.item() / len(y), workloads.accuracy(outputs, labels)


def evaluate_splits(run, train_point):
    """{split: (loss, accuracy)}: the epoch's training figures, the validation split (if held out)
    and the test split. Nothing selects on the test split; it is recorded to be reported."""
    data, points = run.data, {"train": train_point}
    if data.val_y is not None:
        points["val"] = evaluate(run.model, run.objective, data.val_x, data.val_y, run.inputs, run.settings)
    points["test"] = evaluate(run.model, run.objective, data.test_x, data.test_y, run.inputs, run.settings)
    return points


def current_lr(optimizer):
    return optimizer.param_groups[0]["lr"]


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


def save(run, optimizer, schedule, generator, metrics, device):
    state = {"model": run.model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "epoch": metrics["epoch"][-1], "metrics": metrics,
             "args": vars(run.args),
             "rng": {"torch": torch.get_rng_state(), "data": generator.get_state(),
                     "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}}
    records.save_checkpoint(run.run_dir, state, metrics)


def restore(checkpoint, model, optimizer, schedule, generator, device):
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    generator.set_state(checkpoint["rng"]["data"])
    if checkpoint["rng"]["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    metrics = records.upgrade(checkpoint["metrics"])
    metrics["status"] = "running"
    print(f"resuming from epoch {metrics['epoch'][-1]}")
    return metrics


def record_divergence(metrics, run_dir, epoch, losses):
    step = (epoch - 1) * metrics["iters_per_epoch"] + len(losses)
    metrics["iter_loss"].extend(losses)
    metrics["status"] = "diverged"
    metrics["diverged"] = {"epoch": epoch, "step": step}
    records.save_metrics(metrics, run_dir)
    print(f"diverged: the training loss became {losses[-1]} at epoch {epoch}, step {step}; "
          f"stopped (exit {EXIT_DIVERGED})", file=sys.stderr)
    return EXIT_DIVERGED


def interrupted(metrics, run_dir, signum, hint=True):
    metrics["status"] = "interrupted"
    records.save_metrics(metrics, run_dir)
    if hint:
        argv = [a for a in records.load_config(run_dir / records.CONFIG)["argv"] if a not in ("--overwrite", "--resume")]
        resume = command_line(argv + ["--resume"])
        print(f"\ninterrupted; epoch {metrics['epoch'][-1]} is saved in {run_dir}. Resume with:\n  {resume}",
              file=sys.stderr)
    return EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


if __name__ == "__main__":
    sys.exit(run_main(main))
