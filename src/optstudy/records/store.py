"""Run records on disk: what identifies a run, the record's lifecycle (new, save, restore, resume
checks), atomic writes, and reading records back for analysis.

A run directory holds config.json (what was run, where, with which versions), metrics.json and
metrics.pkl (the per-epoch metrics, rewritten after every epoch: JSON, which the analysis reads and
which cannot run code, and the same dict as a joblib pickle for those who load it themselves) and
checkpoint.pt (everything needed to resume). A run id in config.json and in the metrics ties them
together. One process at a time holds a run directory (an OS lock on its .lock file). Analysis
scripts import this module, never training code.
"""
import errno
import json
import os
import platform
import re
import shutil
import stat
import uuid
from contextlib import contextmanager
from pathlib import Path

import joblib

from optstudy.core import settings
from optstudy.core.cli import UserError

CONFIG = "config.json"
METRICS = "metrics.pkl"
METRICS_JSON = "metrics.json"
CHECKPOINT = "checkpoint.pt"
RECORD = (CONFIG, METRICS, METRICS_JSON, CHECKPOINT)
LOCK = ".lock"
REPLACED = ".replaced"           # an overwritten record waits here until the new run's first checkpoint
CHECKPOINT_KEYS = {"model", "optimizer", "schedule", "epoch", "metrics", "args", "rng"}
TRUST_PICKLES_HELP = "read runs that have only metrics.pkl (a pickle can run code: only for records you made)"

# What is not part of a run's identity, what a resume may change and what a plot groups over:
# each derived from the roles RunConfig's fields declare (core/settings.py).
EXECUTION_SETTINGS = settings.EXECUTION_SETTINGS
RESUMABLE = settings.RESUMABLE_SETTINGS
SEED_GROUPED = settings.SEED_GROUPED


def identity(args, ignore=EXECUTION_SETTINGS):
    """The settings of a run (its args dict) that decide what it computes, sorted by name. A flag
    left unset (None) counts as absent, so records made before a flag existed keep their identity."""
    return {k: v for k, v in sorted(args.items()) if k not in ignore and v is not None}


def differences(old, new):
    """'key: old -> new' for every key whose value differs, for one-line refusals."""
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


# ---------------------------------------------------------------- the per-epoch metrics

def new_run_id():
    return uuid.uuid4().hex


# The splits a record can hold. "val" is only ever a split held out of the training set
# (--val-split); the test split is "test", also where the tutorial calls it "validation".
SPLITS = ("train", "val", "test")


def new_metrics(iters_per_epoch, has_accuracy=True, run_id=None, has_val=False):
    """Per-epoch lists (epoch 0 = before training), every minibatch loss, and the run's status."""
    splits = [s for s in SPLITS if s != "val" or has_val]
    keys = ["epoch", *(f"{s}_loss" for s in splits), *(f"{s}_acc" for s in splits if has_accuracy), "seconds", "lr"]
    return {**{k: [] for k in keys}, "iter_loss": [], "iters_per_epoch": iters_per_epoch,
            "status": "running", "diverged": None, "run_id": run_id}


def record_point(metrics, epoch, points, seconds, lr):
    """points: {split: (loss, accuracy or None)}; epoch 0's train figures come from an evaluation."""
    metrics["epoch"].append(epoch)
    for split, (loss, acc) in points.items():
        metrics[f"{split}_loss"].append(loss)
        if f"{split}_acc" in metrics:
            metrics[f"{split}_acc"].append(acc)
    metrics["seconds"].append(seconds)
    metrics["lr"].append(lr)


def upgrade(metrics):
    """Records made before the validation split existed called the test split "val": name it "test"."""
    if "test_loss" not in metrics and "val_loss" in metrics:
        for kind in ("loss", "acc"):
            if f"val_{kind}" in metrics:
                metrics[f"test_{kind}"] = metrics.pop(f"val_{kind}")
    return metrics


# ---------------------------------------------------------------- run folders and checkpoints

@contextmanager
def held(run_dir):
    """Hold run_dir for this process: an flock on its .lock file, which the OS releases when the
    process ends (a SIGKILL leaves no stale lock). A second writer gets one line naming the holder.
    The lock is opened without following a symlink (O_NOFOLLOW) and must be a regular file: a
    planted link never makes a run truncate and write into the file it points to."""
    import fcntl
    ensure_writable(run_dir)
    handle = open_lock(Path(run_dir) / LOCK)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(200).strip() or "pid unknown"
            raise UserError(f"{run_dir} is in use by another process ({holder}); wait for it, or use another "
                            "--run-name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def open_lock(path):
    """The lock file, opened for reading and writing (created if absent), refused in one line where
    it is a symlink, a folder or anything but a regular file."""
    refuse = lambda what: UserError(f"{path} is {what}, not the run's lock file; remove it (nothing of the run "
                                    "is in it) and start again")
    if path.is_symlink():
        raise refuse("a symlink")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except IsADirectoryError:
        raise refuse("a folder") from None
    except OSError as err:
        if err.errno == errno.ELOOP:           # it became a symlink after the check above
            raise refuse("a symlink") from None
        raise UserError(f"cannot open {path} ({err.strerror or err})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise refuse("not a regular file")
    return os.fdopen(fd, "r+")


def prepare_run_dir(run_dir, resume, overwrite):
    """Refuse to clobber a record. Returns 'resume' (a checkpoint to continue), or 'new' (then the
    run calls set_aside before it writes). Call it while holding the folder (held())."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; choose one")
    if resume and check_resumable(run_dir):
        return "resume"
    has_record = any((run_dir / f).exists() for f in RECORD)
    if has_record and not (overwrite or resume):
        raise UserError(f"{run_dir} already holds a run: continue it with --resume, or replace it with --overwrite")
    return "new"


def check_resumable(run_dir):
    """True if run_dir has a checkpoint to continue, False if it was started but never trained (then
    --resume starts it); otherwise a one-line refusal. It writes nothing."""
    if (Path(run_dir) / CHECKPOINT).is_file():
        return True
    if not started_untrained(run_dir):
        raise UserError(f"nothing to resume: {Path(run_dir) / CHECKPOINT} does not exist (start the run without --resume)")
    return False


def started_untrained(run_dir):
    """A run stopped after writing config.json but before its first checkpoint (during the epoch-0
    evaluation) lost nothing: --resume simply starts it."""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG).is_file() and not has_metrics(run_dir) and not (run_dir / CHECKPOINT).exists()


def set_aside(run_dir):
    """Before a new run writes its config.json: move a record already there out of the way (renames:
    atomic) until the new run's first checkpoint, so that a reader never sees the new config beside
    the old metrics. If an earlier overwrite's record is still aside, that one (the last complete
    run) is kept."""
    if not any((Path(run_dir) / name).exists() for name in RECORD):
        return
    aside = Path(run_dir) / REPLACED
    keep = not aside.exists()
    aside.mkdir(exist_ok=True)
    for name in RECORD:
        if (Path(run_dir) / name).exists():
            if keep:
                os.replace(Path(run_dir) / name, aside / name)
            else:
                (Path(run_dir) / name).unlink()


def discard_replaced(run_dir):
    shutil.rmtree(Path(run_dir) / REPLACED, ignore_errors=True)


def ensure_writable(folder, flag=None):
    """Create folder if needed and check that a file can be written there: before the work, so that
    no result is lost to an output error after it. An existing file in its place is refused."""
    where = f"{flag} {folder}" if flag else str(folder)
    check_folder_target(folder, flag)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe = Path(folder) / f".write-test{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write to {where} ({err.strerror or err})") from None


def check_folder_target(folder, flag=None):
    """A folder to be written (made if absent): refused in one line, creating nothing, where it or a
    folder above it is an existing file."""
    where = f"{flag} {folder}" if flag else str(folder)
    for path in (Path(folder), *Path(folder).parents):
        if path.is_dir():
            return
        if path.exists() or path.is_symlink():
            what = "it is a file" if path == Path(folder) else f"{path} is a file"
            raise UserError(f"cannot write to {where}: {what}, not a folder; give a folder")


def check_file_target(path, flag=None):
    """A file to be written: refused in one line, before the work, where it is an existing folder
    or its folder cannot be written."""
    where = f"{flag} {path}" if flag else str(path)
    if Path(path).is_dir():
        raise UserError(f"{where} is a folder; give the path of a file to write")
    ensure_writable(Path(path).resolve().parent, flag)


def load_checkpoint(run_dir, args):
    """The checkpoint to resume, refused with the differing settings if it was another run."""
    import torch
    path = Path(run_dir) / CHECKPOINT
    try:
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise UserError(f"{path} is unreadable ({err.__class__.__name__}); start again with --overwrite") from None
    if not isinstance(checkpoint, dict) or not CHECKPOINT_KEYS <= set(checkpoint):
        raise UserError(f"{path} is not a checkpoint of this repository's train.py; start again with --overwrite")
    saved, now = identity(checkpoint["args"], RESUMABLE), identity(args, RESUMABLE)
    if saved != now:
        raise UserError(f"cannot resume {run_dir}: its checkpoint was made with different settings "
                        f"({differences(saved, now)})")
    return checkpoint


def checkpoint_epoch(run_dir):
    """The epoch a run's checkpoint was saved after (what a resume continues from), or None where
    there is no readable checkpoint."""
    import torch
    try:
        checkpoint = torch.load(Path(run_dir) / CHECKPOINT, weights_only=True, map_location="cpu")
        return int(checkpoint["epoch"])
    except Exception:                   # absent, cut short or foreign: it trains from the start, or is refused there
        return None


def save_checkpoint(run_dir, state, metrics):
    """Checkpoint first, then metrics: metrics.pkl never runs ahead of a resumable state."""
    import torch
    atomic_write(Path(run_dir) / CHECKPOINT, lambda tmp: torch.save(state, tmp))
    save_metrics(metrics, run_dir)


def sweep_run_dir(sweep_dir, optimizer, setting, seed):
    """Where a sweep keeps one run: the setting (a learning rate, or {hyperparameter: value}) and
    the seed are in the path."""
    return Path(sweep_dir) / optimizer_folder(optimizer) / setting_folder(setting) / f"seed_{seed}"


def setting_folder(setting):
    """{'lr': 0.001} -> lr_0.001; {'lr': 0.001, 'beta1': 0.95} -> lr_0.001__beta1_0.95."""
    setting = setting if isinstance(setting, dict) else {"lr": setting}
    return "__".join(f"{name}_{value:.10g}" for name, value in setting.items())


def optimizer_folder(name):
    """A folder name for an optimizer: a registry name as it is, the user's module:Class or
    file.py:Class made path-safe (my_opts/lion.py:Lion -> my_opts_lion.py_Lion)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "optimizer"


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
    """The same dict twice: joblib, as this repository has always written it, then JSON, the form the
    analysis reads (a pickle from someone else can run code when loaded; JSON cannot)."""
    atomic_write(Path(run_dir) / METRICS, lambda tmp: joblib.dump(metrics, tmp))
    save_json(metrics, Path(run_dir) / METRICS_JSON)


def load_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is corrupt or unreadable ({err.__class__.__name__}: {err})") from None


def has_metrics(run_dir):
    return (Path(run_dir) / METRICS_JSON).is_file() or (Path(run_dir) / METRICS).is_file()


def load_metrics(run_dir, trust_pickles=False):
    """The per-epoch metrics from metrics.json; from metrics.pkl only if the user trusts its source.
    Their shape is checked here, once: a reader gets a record it can use, or one line naming the
    file and what is wrong with it."""
    run_dir = Path(run_dir)
    if (run_dir / METRICS_JSON).is_file():
        path = run_dir / METRICS_JSON
        metrics = load_json(path)
    elif (run_dir / METRICS).is_file() and trust_pickles:
        path = run_dir / METRICS
        try:
            metrics = joblib.load(path)
        except Exception as err:  # joblib raises many kinds on a damaged pickle
            raise UserError(f"{run_dir / METRICS} is corrupt ({err.__class__.__name__}); re-run or delete that run") from None
    elif (run_dir / METRICS).is_file():
        raise UserError(f"{run_dir} has only {METRICS}, a pickle, and loading a pickle can run code: pass "
                        "--trust-pickles if you made it yourself")
    else:
        raise UserError(f"{run_dir / METRICS_JSON} is missing: is {run_dir} a run directory?")
    if not isinstance(metrics, dict) or "epoch" not in metrics:
        raise UserError(f"{run_dir}: its metrics are not a record of this repository")
    metrics = upgrade(metrics)
    wrong = metrics_problem(metrics)
    if wrong:
        raise UserError(f"{path}: {wrong} (not a run's metrics as train.py writes them; re-run that run or move it away)")
    return metrics


STATUSES = ("running", "complete", "interrupted", "diverged", "failed")
# The lists with one value per epoch (epoch 0 = before training); a record has each of them but
# the val_* (only with a validation split) and the *_acc (only where the workload has accuracy).
PER_EPOCH = ("epoch", *(f"{s}_{k}" for s in SPLITS for k in ("loss", "acc")), "seconds", "lr")
PER_EPOCH_REQUIRED = ("epoch", "train_loss")        # records older than the other lists have these


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metrics_problem(metrics):
    """What is wrong with a metrics dict's shape, in words, or None."""
    if metrics.get("status") not in STATUSES:
        return (f"its status is {metrics.get('status')!r}, not one of {', '.join(STATUSES)}" if "status" in metrics
                else "it has no status")
    for key in PER_EPOCH:
        value = metrics.get(key)
        if key not in metrics:
            if key in PER_EPOCH_REQUIRED:
                return f"it has no {key}"
            continue
        if not isinstance(value, list) or not value:
            return f"its {key} is {'empty' if value == [] else 'not a list'} (one value per epoch)"
        if not all(map(is_number, value)):
            return f"its {key} holds {next(type(v).__name__ for v in value if not is_number(v))} values, not numbers"
        if len(value) != len(metrics["epoch"]):
            return f"its {key} has {len(value)} values for {len(metrics['epoch'])} epochs"
    if not all(isinstance(e, int) for e in metrics["epoch"]) or metrics["epoch"] != sorted(set(metrics["epoch"])):
        return "its epoch list is not whole epochs in increasing order"
    if not isinstance(metrics.get("iter_loss", []), list) or not all(map(is_number, metrics.get("iter_loss", []))):
        return "its iter_loss is not a list of numbers"
    if "iters_per_epoch" in metrics and not (is_number(metrics["iters_per_epoch"]) and metrics["iters_per_epoch"] >= 0):
        return "its iters_per_epoch is not a number"
    if metrics.get("run_id") is not None and not isinstance(metrics["run_id"], str):
        return f"its run_id is {metrics['run_id']!r:.40}, not a string"
    return None


def load_config(path):
    """A run's config.json, its shape checked: a JSON object with the run's args (their seed), the
    optimizer (its name and hyperparameters) and, where there is one, a run id that is a string."""
    config = load_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("args"), dict):
        raise UserError(f"{path} is not a run's config (a JSON object with the run's args)")
    wrong = config_problem(config)
    if wrong:
        raise UserError(f"{path}: {wrong} (not a run's config as train.py writes it; re-run that run or move it away)")
    return config


def config_problem(config):
    optimizer = config.get("optimizer")
    if not isinstance(optimizer, dict):
        return "it has no optimizer" if "optimizer" not in config else "its optimizer is not an object"
    if not isinstance(optimizer.get("name"), str) or not isinstance(optimizer.get("hyperparameters"), dict):
        return "its optimizer has no name or no hyperparameters"
    seed = config["args"].get("seed")
    if "seed" not in config["args"]:
        return "its args have no seed"
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"its args.seed is {seed!r}, not a whole number"
    if config.get("run_id") is not None and not isinstance(config["run_id"], str):
        return f"its run_id is {config['run_id']!r:.40}, not a string"
    return None


def load_run(run_dir, trust_pickles=False):
    """(config, metrics) of one run directory, or a UserError that names the bad file: the one
    loader of every reader (plot, report, export, baselines, the sweep's picks and progress). Files
    of two different runs (their run ids differ, or only one of them has one) are refused, never
    drawn together."""
    config, metrics = load_config(Path(run_dir) / CONFIG), load_metrics(run_dir, trust_pickles)
    ids = config.get("run_id"), metrics.get("run_id")
    if ids[0] != ids[1]:
        words = lambda i: "none" if i is None else i[:8]
        raise UserError(f"{run_dir}: config.json and the metrics belong to different runs (run ids {words(ids[0])} "
                        f"and {words(ids[1])}); re-run it with --overwrite, or move it away")
    return config, metrics


def record_problem(run_dir, trust_pickles=False):
    """Why the record in a run folder does not read back (the loader's one line), or None where it
    does or where there is nothing to lose: no record yet (nothing, or a config.json before the first
    epoch), or a checkpoint whose metrics.json was not written yet (a process killed between the two
    writes: the checkpoint holds the metrics, and --resume reads only it)."""
    run_dir = Path(run_dir)
    try:
        if (run_dir / METRICS_JSON).exists() or (has_metrics(run_dir) and not (run_dir / CHECKPOINT).is_file()):
            load_run(run_dir, trust_pickles)
        elif (run_dir / CONFIG).exists():
            load_config(run_dir / CONFIG)
    except UserError as err:
        return str(err)
    return None


def find_runs(paths):
    """Run directories (those holding metrics.json or metrics.pkl) at or below each path, sorted;
    hidden folders (an overwritten record set aside) are not runs."""
    runs = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist")
        if has_metrics(path):
            runs.add(path)
        found = {p.parent for name in (METRICS_JSON, METRICS) for p in path.rglob(name)}
        runs.update(d for d in found if not any(part.startswith(".") for part in d.relative_to(path).parts))
    return sorted(runs)


def load_all(paths, trust_pickles=False):
    """[(run_dir, config, metrics)] of every run at or below the paths."""
    return [(d, *load_run(d, trust_pickles)) for d in find_runs(paths)]
