"""Shipped baselines: compact records (config.json and the per-epoch metrics, no minibatch losses,
no checkpoint) of the runs behind the README's studies. baselines.py's docstring is the guide;
records/meaning.py says which baseline is comparable with a run."""
from pathlib import Path

from optstudy.records import store as records


def collect(paths, into):
    """Copy every finished run's config and per-epoch metrics (no minibatch losses, no checkpoint)."""
    runs = records.find_runs(paths)
    root = Path(paths[0]) if len(paths) == 1 else Path(".")
    written = 0
    for plan in sorted(root.rglob("sweep.json")) if len(paths) == 1 else []:   # the plans and commands that made them
        (into / plan.parent.relative_to(root)).mkdir(parents=True, exist_ok=True)
        records.save_json(records.load_json(plan), into / plan.relative_to(root))
    for run_dir in runs:
        config, metrics = records.load_run(run_dir)
        if metrics["status"] not in ("complete", "diverged"):
            continue
        target = into / (run_dir.relative_to(root) if run_dir.is_relative_to(root) else run_dir.name)
        target.mkdir(parents=True, exist_ok=True)
        records.save_json(config, target / records.CONFIG)
        records.save_json({**metrics, "iter_loss": [], "compact": True}, target / records.METRICS_JSON)
        written += 1
    return written


def load(path):
    """[(run_dir, config, metrics)] of a baseline folder."""
    return records.load_all([path])
