"""Run records on disk: atomic writes, and reading records back for analysis.

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
