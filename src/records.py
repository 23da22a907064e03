"""Run records on disk: what identifies a run, the record's lifecycle (new, save, restore, resume
checks), atomic writes, and reading records back for analysis.

A run directory holds config.json (what was run, where, with which versions),
metrics.pkl (joblib; per-epoch metrics, rewritten after every epoch) and checkpoint.pt
(everything needed to resume). Analysis scripts import this module, never training code.
"""
import json
import os
from pathlib import Path

import joblib

from cli import UserError

CONFIG = "config.json"
METRICS = "metrics.pkl"
CHECKPOINT = "checkpoint.pt"

# The one definition of what is not part of a run's identity: settings that say where or how a run
# executes, not what it computes. They may change when a run is resumed, and runs that differ only
# in them are the same experiment (plot draws them as one curve; a sweep compares plans without them).
EXECUTION_SETTINGS = frozenset({"output_dir", "run_name", "resume", "overwrite", "quiet", "threads", "device",
                                "data_root", "list_optimizers", "list_workloads"})
# Besides those, a resume may raise the number of epochs, and a plot groups runs across seeds.
RESUMABLE = EXECUTION_SETTINGS | {"epochs"}
SEED_GROUPED = RESUMABLE | {"seed"}


def identity(args, ignore=EXECUTION_SETTINGS):
    """The settings of a run (its args dict) that decide what it computes, sorted by name."""
    return {k: v for k, v in sorted(args.items()) if k not in ignore}


def differences(old, new):
    """'key: old -> new' for every key whose value differs, for one-line refusals."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


# ---------------------------------------------------------------- the per-epoch metrics

def new_metrics(iters_per_epoch, has_accuracy=True):
    """Per-epoch lists (epoch 0 = before training), every minibatch loss, and the run's status."""
    keys = ["epoch", "train_loss", "val_loss", "seconds", "lr"]
    if has_accuracy:
        keys[2:2] = ["train_acc"]
        keys[4:4] = ["val_acc"]
    return {**{k: [] for k in keys}, "iter_loss": [], "iters_per_epoch": iters_per_epoch,
            "status": "running", "diverged": None}


def record_point(metrics, epoch, train, val, seconds, lr):
    """train and val are (loss, accuracy or None); epoch 0's train figures come from an evaluation."""
    metrics["epoch"].append(epoch)
    metrics["train_loss"].append(train[0])
    metrics["val_loss"].append(val[0])
    if "train_acc" in metrics:
        metrics["train_acc"].append(train[1])
        metrics["val_acc"].append(val[1])
    metrics["seconds"].append(seconds)
    metrics["lr"].append(lr)


# ---------------------------------------------------------------- run folders and checkpoints

def prepare_run_dir(run_dir, resume, overwrite):
    """Refuse to clobber a record. Returns 'resume' (a checkpoint to continue), or 'new'."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if resume and (Path(run_dir) / CHECKPOINT).is_file():
        return "resume"
    if resume and not started_untrained(run_dir):
        raise UserError(f"nothing to resume: {Path(run_dir) / CHECKPOINT} does not exist (start the run without --resume)")
    has_record = any((Path(run_dir) / f).exists() for f in (CONFIG, METRICS, CHECKPOINT))
    if has_record and not (overwrite or resume):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume, or replace it with --overwrite")
    ensure_writable(run_dir)
    return "new"


def started_untrained(run_dir):
    """A run stopped after writing config.json but before its first checkpoint (during the epoch-0
    evaluation) lost nothing: --resume simply starts it."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG).is_file() and not (run_dir / METRICS).exists() and not (run_dir / CHECKPOINT).exists()


def ensure_writable(run_dir):
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(run_dir) / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to {run_dir} ({err.strerror or err})") from None


def load_checkpoint(run_dir, args):
    """The checkpoint to resume, refused with the differing settings if it was another run."""
    import torch
    path = Path(run_dir) / CHECKPOINT
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise UserError(f"{path} is unreadable ({err.__class__.__name__}); start again with --overwrite") from None
    saved, now = identity(checkpoint["args"], RESUMABLE), identity(args, RESUMABLE)
    if saved != now:
        raise UserError(f"cannot resume {run_dir}: its checkpoint was made with different settings "
                        f"({differences(saved, now)})")
    return checkpoint


def save_checkpoint(run_dir, state, metrics):
    """Checkpoint first, then metrics: metrics.pkl never runs ahead of a resumable state."""
    import torch
    atomic_write(Path(run_dir) / CHECKPOINT, lambda tmp: torch.save(state, tmp))
    save_metrics(metrics, run_dir)


def sweep_run_dir(sweep_dir, optimizer, lr, seed):
    """Where a sweep keeps one run: the setting and the seed are in the path."""
    return Path(sweep_dir) / optimizer / f"lr_{lr:g}" / f"seed_{seed}"


def atomic_write(path, write):
    """Call write(tmp_path), then rename over path: readers see the old file or the new one,
    never half of either, even if the process dies mid-write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_json(obj, path):
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def save_metrics(metrics, run_dir):
    atomic_write(Path(run_dir) / METRICS, lambda tmp: joblib.dump(metrics, tmp))


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({err.__class__.__name__}: {err})") from None


def load_metrics(run_dir):
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise UserError(f"{path} is missing: is {run_dir} a run directory?")
    try:
        metrics = joblib.load(path)
    except Exception as err:  # joblib raises many kinds on a damaged pickle
        raise UserError(f"{path} is corrupt ({err.__class__.__name__}); re-run or delete that run") from None
    if not isinstance(metrics, dict) or "epoch" not in metrics:
        raise UserError(f"{path} is not a metrics record of this repository")
    return metrics


def load_run(run_dir):
    """(config, metrics) of one run directory, or a UserError that names the bad file."""
    return load_json(Path(run_dir) / CONFIG), load_metrics(run_dir)


def find_runs(paths):
    """Run directories (those holding metrics.pkl) at or below each path, sorted."""
    runs = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist")
        if (path / METRICS).is_file():
            runs.add(path)
        runs.update(p.parent for p in path.rglob(METRICS))
    return sorted(runs)
