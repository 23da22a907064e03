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
import trials as batched
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
    p.add_argument("--stacked-step", action="store_true",
                   help="runs trained together (a sweep's --batch-trials): Adam's or SGD's update by torch's fused "
                        "kernel, once per group of runs with the same settings, instead of torch's loop over each "
                        "run's parameter group (trials.StackedStep); other optimizers are refused")
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
    return train_runs([argv], resume_hint)


# Flags in which the trials of one batch may differ: each trial's own. Every other setting is the batch's.
PER_TRIAL = {"seed", "lr", "betas", "eps", "weight_decay", "opt", "no_bias_correction", "output_dir", "run_name",
             "resume", "overwrite"}


@dataclass
class Trial:
    """One run: its flags, its optimizer's settings, its folder, record and random streams."""
    argv: list
    args: argparse.Namespace
    hyper: dict
    run_dir: Path
    checkpoint: dict = None
    config: dict = None
    metrics: dict = None
    generator: torch.Generator = None    # data order (and augmentation), as in a solo run
    noise: torch.Generator = None        # dropout and sampling noise of a batched trial (a solo run: the global one)
    diverged: bool = False


def parse_trial(argv):
    args = build_parser().parse_args(argv)
    workload = workloads.WORKLOADS[args.workload]
    resolve_workload_defaults(args, workload)
    hyper = optimizers.resolve(args.optimizer, optimizer_overrides(args, workload), optimizers.parse_opts(args.opt))
    run_dir = Path(args.output_dir) / (args.run_name or f"{records.optimizer_folder(args.optimizer)}_seed{args.seed}")
    return Trial(argv, args, hyper, run_dir)


def train_runs(argvs, resume_hint=True):
    """Train runs given by their train.py flags: one is an ordinary run; several of a workload whose
    model stacks train together as one model (trials.py), each exactly as it would alone."""
    runs = [parse_trial(argv) for argv in argvs]
    args = check_batch(runs)
    workload = workloads.WORKLOADS[args.workload]
    device = provenance.pick_device(args.device)
    settings = Settings(args.batch_size, provenance.resolve_precision(args.precision, device), quiet(args),
                        workload.eval_batch_size)
    for t in runs:
        if t.args.resume:
            records.check_resumable(t.run_dir)        # a refusal creates nothing, not even the folder
    with contextlib.ExitStack() as held:
        for t in runs:
            held.enter_context(records.held(t.run_dir))   # one process per run folder
            t.checkpoint = resumable_checkpoint(t.run_dir, t.args)
        runs = still_to_train(runs)
        if not runs:
            return EXIT_OK
        data, inputs = load_data(workload, device, args.dataset, args.data_dir, args.data_root, args.limit_train,
                                 args.limit_val, args.preprocess, args.channels_last, args.zca_eps, args.val_split)
        if args.batch_size > len(data.train_y):
            raise UserError(f"--batch-size {args.batch_size} is larger than the {len(data.train_y)} training samples")
        configure_backends(args.threads, args.tf32, device)
        models_ = [build_trial_model(t, workload, data, device, len(runs) > 1) for t in runs]
        model = models_[0] if len(runs) == 1 else batched.stack(workload.model, models_, [t.noise for t in runs],
                                                                 stacked_grads=args.stacked_step)
        run = Run(model, workload, data, inputs, settings, runs, models_, resume_hint)
        check_model_accepts(run)
        for t in runs:
            t.config = make_config(t.args, t.argv, workload, t.hyper, settings, device, data, models_[0], t.run_dir,
                                   t.checkpoint, batch_size=len(runs))
        return train(run, device)


def hyperparameters(argv):
    """Every constructor argument the optimizer of a run with these flags gets (the sweep checks
    its plan with the exact flags of each run)."""
    t = parse_trial(argv)
    return {**optimizers.lookup(t.args.optimizer).fixed, **t.hyper}


def batch_key(args):
    """The settings the trials of one batch must share: everything but each trial's own."""
    return {k: v for k, v in records.identity(vars(args)).items() if k not in PER_TRIAL}


def check_batch(runs):
    """Runs trained together share every setting but their own (PER_TRIAL) and a stackable model."""
    first = runs[0].args
    if len(runs) > 1:
        differing = sorted({k for t in runs[1:] for k, v in batch_key(t.args).items() if batch_key(first).get(k) != v})
        if differing:
            raise UserError(f"runs trained together must share {', '.join(differing)}")
        if not batched.stackable(workloads.WORKLOADS[first.workload].model):
            raise UserError(f"workload {first.workload} has no stacked model; train its runs one at a time")
        if len({t.run_dir.resolve() for t in runs}) != len(runs):
            raise UserError("two runs of the batch share a run folder")
    return first


def still_to_train(runs):
    """The runs not yet at their last epoch, all from one epoch (a batch moves in step)."""
    todo = [t for t in runs if t.checkpoint is None or t.checkpoint["epoch"] < t.args.epochs]
    for t in runs:
        if t not in todo:
            already_done(t.run_dir, t.checkpoint["metrics"])
    if len({t.checkpoint["epoch"] if t.checkpoint else -1 for t in todo}) > 1:
        raise UserError("runs trained together must continue from the same epoch; train them one at a time")
    return todo


def build_trial_model(t, workload, data, device, stacked):
    """The trial's model, initialised from its seed as a solo run's (then restored, on resume); a
    batched trial gets its own noise stream, where the solo run's global stream would now be."""
    torch.manual_seed(t.args.seed)
    model = build_model(workload, data, device, t.args.dropout, t.args.dropout_rate, t.args.channels_last)
    if t.checkpoint is not None:
        model.load_state_dict(t.checkpoint["model"])
    if stacked:
        cuda = device.type == "cuda"
        t.noise = torch.Generator(device=device)
        saved = t.checkpoint["rng"]["cuda" if cuda else "torch"] if t.checkpoint is not None else None
        t.noise.set_state(saved if saved is not None else torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state())
    return model


def already_done(run_dir, metrics):
    """A run that has all its epochs: nothing to train. Only a run stopped between its last
    checkpoint and the word 'complete' gets that word."""
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
    objective = workloads.OBJECTIVES[run.workload.objective]
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(), autocast(y.device, run.settings.precision):
            objective(run.models[0].eval(), x, y)
    except RuntimeError as err:
        reason = str(err).splitlines()[0][:160]
        raise UserError(f"the samples ({'x'.join(map(str, data.sample_shape))}) do not fit this workload's model "
                        f"({reason})") from None


def make_config(args, argv, workload, hyper, settings, device, data, model, run_dir, checkpoint, batch_size=1):
    """The self-describing part of the record: enough to rerun it and to know what ran. A run
    trained with others as one stacked model says so (batched: how many); its command is its own."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    batched_with = {"batched": {"trials": batch_size}} if batch_size > 1 else {}
    if checkpoint is not None:
        config = records.load_config(run_dir / records.CONFIG)
        config["args"]["epochs"] = args.epochs             # the record says what the run is now
        config.setdefault("resumed", []).append({"time": now, "command": command_line(argv),
                                                 "from_epoch": checkpoint["epoch"], **batched_with})
        return config
    return {**batched_with,
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


@dataclass
class Run:
    """What is trained and where it is recorded, so that the loop's helpers take one argument: one
    run, or K trials stacked into one model (each trial's own model in `models`)."""
    model: torch.nn.Module       # the run's model, or the trials' trials.Stack
    workload: workloads.Workload
    data: datasets.Data
    inputs: datasets.Inputs
    settings: Settings
    trials: list                 # [Trial]: one for an ordinary run
    models: list                 # each trial's own model (a stacked trial's parameters are views)
    resume_hint: bool = True     # on Ctrl-C, print the train.py command that resumes (a sweep prints its own)
    fast_step: object = None     # a trials.StackedStep standing in for optimizer.step (--stacked-step)

    @property
    def args(self):
        return self.trials[0].args      # the settings every trial of a batch shares

    @property
    def stacked(self):
        return len(self.trials) > 1

    @property
    def objective(self):
        return (batched.OBJECTIVES if self.stacked else workloads.OBJECTIVES)[self.workload.objective]

    def train_batches(self):
        if self.stacked:
            return batched.train_batches(self.data, self.inputs, self.settings.batch_size,
                                         [t.generator for t in self.trials])
        return datasets.train_batches(self.data, self.inputs, self.settings.batch_size, self.trials[0].generator)

    def eval_batches(self, x, y):
        split = batched.eval_batches if self.stacked else datasets.eval_batches
        return split(x, y, self.settings.eval_batch_size, self.inputs)

    def accuracies(self, outputs, labels):
        """Per trial: percent correct over the logits batches (None without accuracy)."""
        if not self.stacked:
            return [workloads.accuracy(outputs, labels)]
        return batched.accuracies(outputs, labels, len(self.trials))

    def live(self):
        return [(k, t) for k, t in enumerate(self.trials) if not t.diverged]


def train(run, device):
    """Epoch 0 (an evaluation of the untrained model), then every epoch, saving after each."""
    args = run.args
    optimizer = build_optimizer(run)
    if run.stacked and args.stacked_step:
        try:
            run.fast_step = batched.StackedStep(optimizer, run.model)
        except ValueError as err:
            raise UserError(str(err)) from None
    schedule = workloads.make_schedule(args.lr_schedule, optimizer)
    for t in run.trials:
        t.generator = torch.Generator().manual_seed(t.args.seed)     # data order and augmentation
    if run.trials[0].checkpoint is None:
        steps = datasets.batches_per_epoch(len(run.data.train_y), args.batch_size)
        for t in run.trials:
            t.metrics = records.new_metrics(steps, run.workload.has_accuracy, t.config["run_id"], run.data.val_y is not None)
    else:
        restore(run, optimizer, schedule, device)
    step_model = compiled(run.model, args.compile)
    for t in run.trials:
        if t.checkpoint is None:
            records.set_aside(t.run_dir)                 # --overwrite: the old record, whole, until epoch 0 is saved
        records.save_json(t.config, t.run_dir / records.CONFIG)
    if not run.trials[0].metrics["epoch"]:
        record_epoch(run, 0, evaluate_splits(run, None), 0.0, optimizer)
        save(run, optimizer, schedule, device)
        for t in run.trials:
            records.discard_replaced(t.run_dir)          # the overwritten record, kept aside until now
    stop = StopRequest()
    try:
        for epoch in range(run.trials[0].metrics["epoch"][-1] + 1, args.epochs + 1):
            start = time.perf_counter()
            train_points = train_epoch(step_model, optimizer, run, epoch, stop)
            if stop.signum is not None:
                return interrupted(run, stop.signum)
            if not run.live():
                return EXIT_DIVERGED
            record_epoch(run, epoch, evaluate_splits(run, train_points), elapsed(start, device), optimizer)
            schedule.step()
            save(run, optimizer, schedule, device)
        for _, t in run.live():
            t.metrics["status"] = "complete"
            records.save_metrics(t.metrics, t.run_dir)
        return EXIT_OK
    finally:
        stop.restore()


def build_optimizer(run):
    """One optimizer; a batch gives each trial its own parameter group with its own settings, so
    that any torch.optim.Optimizer treats each trial as its solo run would."""
    t = run.trials[0]
    if not run.stacked:
        return optimizers.build(t.args.optimizer, run.model.parameters(), t.hyper)
    groups = [{"params": list(m.parameters()), **trial.hyper} for m, trial in zip(run.models, run.trials)]
    return optimizers.build(t.args.optimizer, groups, t.hyper)


def record_epoch(run, epoch, points, seconds, optimizer):
    """Each live trial's figures of the epoch into its metrics, and its line on the console."""
    for k, t in run.live():
        records.record_point(t.metrics, epoch, points[k], seconds, optimizer.param_groups[k]["lr"])
        prefix = f"[{k + 1}/{len(run.trials)}] " if run.stacked else ""
        print(prefix + summary(t.metrics, t.args))


def train_epoch(model, optimizer, run, epoch, stop):
    """One pass over the training set -> per trial (sample-weighted mean loss, accuracy % or None).
    Losses stay on the device (no per-step host sync); a non-finite loss is looked for every
    CPU_DIVERGENCE_CHECK_EVERY steps on the CPU, and at the end of the epoch elsewhere. Either way
    the first bad step is the one recorded. A step does nothing but the model's own work and three
    list appends: the small workloads' steps take well under a millisecond. A trial that diverges
    is recorded and frozen (its gradients dropped); the others go on."""
    model.train()
    n = len(run.data.train_y)
    steps = datasets.batches_per_epoch(n, run.settings.batch_size)
    device = run.data.train_y.device
    check_every = CPU_DIVERGENCE_CHECK_EVERY if device.type == "cpu" else steps
    losses, outputs, labels = [], [], []
    for i, (x, y) in enumerate(tqdm(run.train_batches(), total=steps, desc="batches", disable=run.settings.quiet,
                                    leave=False)):
        with autocast(device, run.settings.precision):
            loss, out = run.objective(model, x, y)
        stepper = run.fast_step or optimizer
        stepper.zero_grad(set_to_none=True)
        (loss if loss.dim() == 0 else loss.sum()).backward()     # trials' losses are independent: one backward
        freeze_diverged(run)
        stepper.step()
        losses.append(loss.detach())
        outputs.append(out)
        labels.append(y)
        if (i + 1) % check_every == 0 or i + 1 == steps:
            record_non_finite(run, losses, epoch, since=(i // check_every) * check_every)
            if not run.live():
                return None
        if stop.signum is not None:
            return None
    losses = torch.stack(losses).view(steps, -1)                 # [steps, trials]
    # Each minibatch loss is a mean over its samples; weight by batch size for the epoch mean.
    sizes = torch.full((steps, 1), float(run.settings.batch_size), device=device)
    sizes[-1] = n - run.settings.batch_size * (steps - 1)
    means = ((losses * sizes).sum(0) / n).tolist()
    accuracies = run.accuracies(outputs, labels)
    for k, t in run.live():
        t.metrics["iter_loss"].extend(losses[:, k].tolist())
    return [(means[k], accuracies[k]) for k in range(len(run.trials))]


def freeze_diverged(run):
    """A diverged trial's parameters get no more updates: optimizers skip a parameter without grad,
    and the stacked step (--stacked-step) leaves out its frozen trials."""
    for k, t in enumerate(run.trials):
        if t.diverged:
            for p in run.models[k].parameters():
                p.grad = None
    if run.fast_step is not None:
        run.fast_step.frozen = {k for k, t in enumerate(run.trials) if t.diverged}


def record_non_finite(run, losses, epoch, since=0):
    """Record every live trial whose losses[since:] hold a NaN/inf (earlier ones were checked) as
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
    """Per trial (mean loss, accuracy % or None) over all of x, without augmentation or dropout."""
    run.model.eval()
    loss_sum = torch.zeros(len(run.trials) if run.stacked else (), device=y.device)
    outputs, labels = [], []
    for xb, yb in run.eval_batches(x, y):
        with autocast(yb.device, run.settings.precision):
            loss, out = run.objective(run.model, xb, yb)
        loss_sum += loss * len(yb)
        outputs.append(out)
        labels.append(yb)
    return [(s / len(y), acc) for s, acc in zip(loss_sum.view(-1).tolist(), run.accuracies(outputs, labels))]


def evaluate_splits(run, train_points):
    """Per trial {split: (loss, accuracy)}: the epoch's training figures (None: evaluate the
    training set, as at epoch 0), the validation split (if held out) and the test split. Nothing
    selects on the test split; it is recorded to be reported."""
    data = run.data
    splits = {"train": train_points or evaluate(run, data.train_x, data.train_y)}
    if data.val_y is not None:
        splits["val"] = evaluate(run, data.val_x, data.val_y)
    splits["test"] = evaluate(run, data.test_x, data.test_y)
    return [{split: points[k] for split, points in splits.items()} for k in range(len(run.trials))]


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
    """Each live trial's checkpoint and metrics, in a solo run's format (its part of a batch's
    optimizer and schedule, its own model tensors and random streams)."""
    optimizer_state, schedule_state = optimizer.state_dict(), schedule.state_dict()
    cuda = device.type == "cuda"
    for k, t in run.live():
        if run.stacked:
            model_state = batched.trial_model_state(run.model, k)
            own_optimizer = batched.group_of(optimizer_state, k)
            own_schedule = batched.schedule_of(schedule_state, k, len(run.trials))
            streams = {"torch": torch.get_rng_state() if cuda else t.noise.get_state(),
                       "cuda": t.noise.get_state() if cuda else None}
        else:
            model_state, own_optimizer, own_schedule = run.model.state_dict(), optimizer_state, schedule_state
            streams = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}
        state = {"model": model_state, "optimizer": own_optimizer, "schedule": own_schedule,
                 "epoch": t.metrics["epoch"][-1], "metrics": t.metrics, "args": vars(t.args),
                 "rng": {**streams, "data": t.generator.get_state()}}
        records.save_checkpoint(t.run_dir, state, t.metrics)


def restore(run, optimizer, schedule, device):
    """Continue from the trials' checkpoints (their models were restored when built)."""
    checkpoints = [t.checkpoint for t in run.trials]
    if run.stacked:
        optimizer.load_state_dict(batched.merge_groups([c["optimizer"] for c in checkpoints]))
        schedule.load_state_dict(batched.merge_schedules([c["schedule"] for c in checkpoints]))
    else:
        optimizer.load_state_dict(checkpoints[0]["optimizer"])
        schedule.load_state_dict(checkpoints[0]["schedule"])
        torch.set_rng_state(checkpoints[0]["rng"]["torch"])
        if checkpoints[0]["rng"]["cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(checkpoints[0]["rng"]["cuda"], device)
    for t in run.trials:
        t.generator.set_state(t.checkpoint["rng"]["data"])
        t.metrics = records.upgrade(t.checkpoint["metrics"])
        t.metrics["status"] = "running"
    print(f"resuming from epoch {run.trials[0].metrics['epoch'][-1]}")


def record_divergence(run, k, epoch, losses):
    t = run.trials[k]
    t.diverged = True
    metrics = t.metrics
    step = (epoch - 1) * metrics["iters_per_epoch"] + len(losses)
    metrics["iter_loss"].extend(losses)
    metrics["status"] = "diverged"
    metrics["diverged"] = {"epoch": epoch, "step": step}
    records.save_metrics(metrics, t.run_dir)
    outcome = "stopped" if not run.stacked else "frozen; the other trials go on"
    print(f"{f'{t.run_dir}: ' if run.stacked else ''}diverged: the training loss became {losses[-1]} at epoch {epoch}, "
          f"step {step}; {outcome} (exit {EXIT_DIVERGED})", file=sys.stderr)


def interrupted(run, signum):
    for _, t in run.live():
        t.metrics["status"] = "interrupted"
        records.save_metrics(t.metrics, t.run_dir)
    if run.resume_hint and not run.stacked:
        t = run.trials[0]
        argv = [a for a in records.load_config(t.run_dir / records.CONFIG)["argv"] if a not in ("--overwrite", "--resume")]
        resume = command_line(argv + ["--resume"])
        print(f"\ninterrupted; epoch {t.metrics['epoch'][-1]} is saved in {t.run_dir}. Resume with:\n  {resume}",
              file=sys.stderr)
    return EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


if __name__ == "__main__":
    sys.exit(run_main(main))
