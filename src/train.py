"""Train the Adam paper's CNN (c64-c64-c128-1000) with one optimizer and record every epoch.

    python src/train.py --optimizer adam                       # the tutorial's reference run
    python src/train.py --optimizer sgd --dataset synthetic --epochs 3
    python src/train.py --list-optimizers

A run lives in <output-dir>/<run-name>/:
    config.json     resolved settings, command line, versions, device, git commit, start time
    metrics.pkl     joblib dict of per-epoch metrics (epoch 0 = before training), rewritten
                    atomically after every epoch; also the per-iteration minibatch losses
    checkpoint.pt   model, optimizer, metrics and every RNG state after the last complete epoch
Exit status: 0 done, 2 bad input, 3 diverged (NaN/inf loss), 130 Ctrl-C, 143 SIGTERM.
"""
import argparse
import datetime
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

import data as datasets
import optimizers
import records
from cli import (EXIT_DIVERGED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, Parser, UserError, non_negative_float,
                 positive_float, positive_int, run_main)
from model import DROPOUT_PLACEMENTS, AdamPaperCNN, count_parameters

# Defaults: the tutorial's reference settings (optimizer hyperparameters live in optimizers.py).
EPOCHS = 45
BATCH_SIZE = 128
EVAL_BATCH_SIZE = 1000           # evaluation has no backward pass, so larger batches are free speed
# Steps between the host syncs that look for a NaN/inf loss. On the CPU a sync costs nothing; on
# an accelerator it would stall the queue, so there the check waits for the end of the epoch.
CPU_DIVERGENCE_CHECK_EVERY = 32
REPO = Path(__file__).resolve().parent.parent
# Settings that may change when a run is resumed; any other difference is refused.
RESUMABLE_CHANGES = {"epochs", "resume", "overwrite", "quiet", "output_dir", "run_name", "list_optimizers"}


def build_parser():
    p = Parser(description="Train the Adam paper's CIFAR-10 CNN with one optimizer.")
    p.add_argument("--optimizer", choices=optimizers.names(), default="adam", help="optimizer (default: adam)")
    p.add_argument("--list-optimizers", action="store_true", help="print the optimizers and their defaults, then exit")
    p.add_argument("--epochs", type=positive_int, default=EPOCHS, help=f"training epochs (default: {EPOCHS})")
    p.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, help=f"minibatch size (default: {BATCH_SIZE})")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's, 1e-3 for adam and sgd)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 weight decay (default: the optimizer's; the tutorial's 5e-4 for adam, 0 for sgd)")
    p.add_argument("--betas", type=non_negative_float, nargs=2, metavar=("B1", "B2"),
                   help="Adam-family betas (default: 0.9 0.999)")
    p.add_argument("--eps", type=positive_float, help="epsilon of adaptive optimizers (default: the optimizer's)")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="paper-adam/paper-adamax only: drop the 1/(1-beta^t) corrections (paper section 6.4)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, dropout, data order and augmentation (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dataset", choices=["cifar10", "synthetic"], default="cifar10", help="dataset (default: cifar10)")
    p.add_argument("--data-dir", help="image folder DIR/{train,test}/<class>/*.png|jpg; overrides --dataset")
    p.add_argument("--data-root", default=str(REPO / "input" / "data"),
                   help="where the CIFAR-10 archive and decoded caches live (default: input/data)")
    p.add_argument("--limit-train", type=positive_int, help="use a fixed random subset of N training images (default: all)")
    p.add_argument("--limit-val", type=positive_int, help="use a fixed random subset of N test images (default: all)")
    p.add_argument("--dropout", choices=DROPOUT_PLACEMENTS, default="tutorial",
                   help="tutorial: after conv1 and on FC; paper: on the input and on FC (default: tutorial)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 = bf16 autocast (default: fp32)")
    p.add_argument("--compile", choices=["off", "on", "cudagraphs"], default="off",
                   help="torch.compile the model; cudagraphs = mode reduce-overhead (default: off)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="channels_last memory format (default: on)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="allow TF32 for fp32 matmuls on CUDA (default: on)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice, one per physical core)")
    p.add_argument("--output-dir", default="outputs", help="parent folder of run records (default: outputs)")
    p.add_argument("--run-name", help="run folder name (default: <optimizer>_seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in its folder from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.list_optimizers:
        print(optimizers.table())
        return EXIT_OK
    hyper = optimizers.resolve(args.optimizer, dict(
        lr=args.lr, weight_decay=args.weight_decay, betas=args.betas, eps=args.eps,
        bias_correction=False if args.no_bias_correction else None))
    device = pick_device(args.device)
    run_dir = Path(args.output_dir) / (args.run_name or f"{args.optimizer}_seed{args.seed}")
    checkpoint = prepare_run_dir(run_dir, args)
    data = load_data(args, device)
    config = make_config(args, argv, hyper, device, data, run_dir, checkpoint)
    return train(args, hyper, device, data, run_dir, config, checkpoint)


# ---------------------------------------------------------------- setup

def pick_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise UserError(f"--device {name}: no such device on this machine")
    return device


def prepare_run_dir(run_dir, args):
    """Refuse to clobber a record; return the checkpoint to resume from (or None)."""
    has_record = any((run_dir / f).exists() for f in (records.CONFIG, records.METRICS, records.CHECKPOINT))
    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if args.resume:
        return load_checkpoint(run_dir, args)
    if has_record and not args.overwrite:
        raise UserError(f"{run_dir} already holds a run: continue it with --resume, or replace it with --overwrite")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to {run_dir} ({err.strerror or err})") from None
    return None


def load_checkpoint(run_dir, args):
    path = run_dir / records.CHECKPOINT
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} does not exist (start the run without --resume)")
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise UserError(f"{path} is unreadable ({err.__class__.__name__}); start again with --overwrite") from None
    saved, now = checkpoint["args"], comparable_args(args)
    differing = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differing:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in differing)
        raise UserError(f"cannot resume {run_dir}: its checkpoint was made with different settings ({detail})")
    return checkpoint


def comparable_args(args):
    return {k: v for k, v in sorted(vars(args).items()) if k not in RESUMABLE_CHANGES}


def load_data(args, device):
    data = datasets.load(args.dataset, args.data_dir, args.data_root, args.limit_train, args.limit_val)
    if args.batch_size > len(data.train_y):
        raise UserError(f"--batch-size {args.batch_size} is larger than the {len(data.train_y)} training images")
    return data.to(device)


def make_config(args, argv, hyper, device, data, run_dir, checkpoint):
    """The self-describing part of the record: enough to rerun it and to know what ran."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    if checkpoint is not None:
        config = records.load_json(run_dir / records.CONFIG)
        config.setdefault("resumed", []).append({"time": now, "command": command_line(argv),
                                                 "from_epoch": checkpoint["epoch"]})
        return config
    import torchvision
    return {
        "args": vars(args),
        "optimizer": {"name": args.optimizer, "hyperparameters": hyper, "fixed": optimizers.REGISTRY[args.optimizer].fixed},
        "command": command_line(argv),
        "argv": argv,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__},
        "device": describe_device(device),
        "data": {"source": data.source, "train_size": len(data.train_y), "val_size": len(data.test_y),
                 "classes": data.classes},
        "model": {"name": "AdamPaperCNN", "parameters": count_parameters(AdamPaperCNN(len(data.classes))),
                  "dropout": args.dropout},
        "git": git_state(),
        "start_time": now,
    }


def command_line(argv):
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "src/train.py", *argv])


def describe_device(device):
    info = {"type": device.type, "threads": torch.get_num_threads(), "host": platform.node()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    else:
        info["name"] = cpu_name()
    return info


def cpu_name():
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def git_state():
    def git(*cmd):
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    try:
        commit = git("rev-parse", "HEAD")
        return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))} if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def configure_backends(args, device):
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
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
    pass


def train(args, hyper, device, data, run_dir, config, checkpoint):
    configure_backends(args, device)
    torch.manual_seed(args.seed)
    model = AdamPaperCNN(len(data.classes), dropout=args.dropout).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizers.build(args.optimizer, model.parameters(), hyper)
    generator = torch.Generator().manual_seed(args.seed)
    if checkpoint is None:
        metrics = new_metrics(args, data)
    else:
        metrics = restore(checkpoint, model, optimizer, generator, device)
    step_model = compiled(model, args.compile)
    records.save_json(config, run_dir / records.CONFIG)
    if not metrics["epoch"]:
        record_point(metrics, 0, evaluate(model, data.train_x, data.train_y, args), evaluate_val(model, data, args),
                     0.0, optimizer)
        save(run_dir, model, optimizer, generator, metrics, args, device)
        print(summary(metrics, args))
    return run_epochs(args, step_model, model, optimizer, generator, data, run_dir, metrics, device)


def run_epochs(args, step_model, model, optimizer, generator, data, run_dir, metrics, device):
    stop = StopRequest()
    try:
        bar = tqdm(range(metrics["epoch"][-1] + 1, args.epochs + 1), desc="epochs", disable=quiet(args), leave=False)
        for epoch in bar:
            start = time.perf_counter()
            try:
                train_loss, train_acc = train_epoch(step_model, optimizer, generator, data, args, metrics, stop)
            except Diverged as err:
                return record_divergence(metrics, run_dir, epoch, err.args[0])
            if stop.signum is not None:
                return interrupted(metrics, run_dir, stop.signum)
            seconds = elapsed(start, device)
            record_point(metrics, epoch, (train_loss, train_acc), evaluate_val(model, data, args), seconds, optimizer)
            save(run_dir, model, optimizer, generator, metrics, args, device)
            (bar.write if not bar.disable else print)(summary(metrics, args))
        metrics["status"] = "complete"
        records.save_metrics(metrics, run_dir)
        return EXIT_OK
    finally:
        stop.restore()


def train_epoch(model, optimizer, generator, data, args, metrics, stop):
    """One pass over the training set. Losses stay on the device (no per-step host sync); a
    non-finite loss is looked for every CPU_DIVERGENCE_CHECK_EVERY steps on the CPU, and at the
    end of the epoch elsewhere. Either way the first bad step is the one recorded."""
    model.train()
    n = len(data.train_y)
    steps = datasets.batches_per_epoch(n, args.batch_size)
    losses = torch.zeros(steps, device=data.train_x.device)
    correct = torch.zeros((), dtype=torch.long, device=data.train_x.device)
    batches = datasets.train_batches(data, args.batch_size, generator, args.channels_last)
    check_every = CPU_DIVERGENCE_CHECK_EVERY if losses.device.type == "cpu" else steps
    for i, (x, y) in enumerate(tqdm(batches, total=steps, desc="batches", disable=quiet(args), leave=False)):
        with autocast(x.device, args.precision):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[i] = loss.detach()
        correct += (logits.argmax(1) == y).sum()
        if (i + 1) % check_every == 0 or i + 1 == steps:
            check_finite(losses[:i + 1], metrics)
        if stop.signum is not None:
            return None, None
    # Each minibatch loss is a mean over its samples; weight by batch size for the epoch mean.
    sizes = torch.full((steps,), float(args.batch_size), device=losses.device)
    sizes[-1] = n - args.batch_size * (steps - 1)
    metrics["iter_loss"].extend(losses.tolist())
    return (losses * sizes).sum().item() / n, 100.0 * correct.item() / n


def check_finite(losses, metrics):
    finite = torch.isfinite(losses)
    if not finite.all():
        first = int((~finite).nonzero()[0])
        metrics["iter_loss"].extend(losses[:first + 1].tolist())
        raise Diverged(first)


def autocast(device, precision):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def compiled(model, mode):
    if mode == "off":
        return model
    return torch.compile(model, mode="reduce-overhead" if mode == "cudagraphs" else None)


@torch.inference_mode()
def evaluate(model, x, y, args):
    """(mean cross-entropy, accuracy %) over all of x, without augmentation or dropout."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for xb, yb in datasets.eval_batches(x, y, EVAL_BATCH_SIZE, args.channels_last):
        with autocast(xb.device, args.precision):
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(y), 100.0 * correct.item() / len(y)


def evaluate_val(model, data, args):
    return evaluate(model, data.test_x, data.test_y, args)


def elapsed(start, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def quiet(args):
    return args.quiet or not sys.stderr.isatty()


# ---------------------------------------------------------------- the record

def new_metrics(args, data):
    return {"epoch": [], "train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [], "seconds": [],
            "lr": [], "iter_loss": [], "iters_per_epoch": datasets.batches_per_epoch(len(data.train_y), args.batch_size),
            "status": "running", "diverged": None}


def record_point(metrics, epoch, train, val, seconds, optimizer):
    """Epoch 0 is measured before any step: its train figures are an evaluation pass."""
    metrics["epoch"].append(epoch)
    metrics["train_loss"].append(train[0])
    metrics["train_acc"].append(train[1])
    metrics["val_loss"].append(val[0])
    metrics["val_acc"].append(val[1])
    metrics["seconds"].append(seconds)
    metrics["lr"].append(optimizer.param_groups[0]["lr"])


def summary(metrics, args):
    m = {k: v[-1] for k, v in metrics.items() if isinstance(v, list) and v}
    return (f"{args.optimizer} epoch {m['epoch']:>3}/{args.epochs}  train loss {m['train_loss']:.4f} "
            f"acc {m['train_acc']:5.2f}%  val loss {m['val_loss']:.4f} acc {m['val_acc']:5.2f}%  {m['seconds']:.1f}s")


def save(run_dir, model, optimizer, generator, metrics, args, device):
    """Checkpoint first, then metrics: metrics.pkl never runs ahead of a resumable state."""
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": metrics["epoch"][-1],
             "metrics": metrics, "args": comparable_args(args),
             "rng": {"torch": torch.get_rng_state(), "data": generator.get_state(),
                     "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}}
    records.atomic_write(run_dir / records.CHECKPOINT, lambda tmp: torch.save(state, tmp))
    records.save_metrics(metrics, run_dir)


def restore(checkpoint, model, optimizer, generator, device):
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    generator.set_state(checkpoint["rng"]["data"])
    if checkpoint["rng"]["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    metrics = checkpoint["metrics"]
    metrics["status"] = "running"
    print(f"resuming from epoch {metrics['epoch'][-1]}")
    return metrics


def record_divergence(metrics, run_dir, epoch, step_in_epoch):
    step = (epoch - 1) * metrics["iters_per_epoch"] + step_in_epoch + 1
    metrics["status"] = "diverged"
    metrics["diverged"] = {"epoch": epoch, "step": step}
    records.save_metrics(metrics, run_dir)
    print(f"diverged: the training loss became {metrics['iter_loss'][-1]} at epoch {epoch}, step {step}; "
          f"stopped (exit {EXIT_DIVERGED})", file=sys.stderr)
    return EXIT_DIVERGED


def interrupted(metrics, run_dir, signum):
    metrics["status"] = "interrupted"
    records.save_metrics(metrics, run_dir)
    argv = [a for a in records.load_json(run_dir / records.CONFIG)["argv"] if a not in ("--overwrite", "--resume")]
    resume = command_line(argv + ["--resume"])
    print(f"\ninterrupted; epoch {metrics['epoch'][-1]} is saved in {run_dir}. Resume with:\n  {resume}", file=sys.stderr)
    return EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


if __name__ == "__main__":
    sys.exit(run_main(main))
