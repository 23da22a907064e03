"""Shipped baselines: compact records (config.json and the per-epoch metrics, no minibatch losses,
no checkpoint) of the runs behind the README's studies. baselines.py's docstring is the guide;
records/meaning.py says which baseline is comparable with a run."""
from pathlib import Path

from optstudy.core.cli import UserError
from optstudy.records import meaning, store as records


def collect(paths, into):
    """Copy every finished run's config and per-epoch metrics (no minibatch losses, no checkpoint).
    A tool never writes over the records it reads: into must be a folder apart from every path."""
    check_apart(paths, Path(into))
    runs = records.find_runs(paths)
    root = Path(paths[0]) if len(paths) == 1 else Path(".")
    written = 0
    for plan in sorted(root.rglob("sweep.json")) if len(paths) == 1 else []:   # the plans and commands that made them
        (into / plan.parent.relative_to(root)).mkdir(parents=True, exist_ok=True)
        records.save_json(meaning.load_plan(plan.parent), into / plan.relative_to(root))
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


def check_apart(paths, into):
    """Refuse, in one line and before any work, an --into that is a file, or that is one of the
    source folders, inside one or holding one (symlinks resolved): compacting there would rewrite
    the very records it reads."""
    records.check_folder_target(into, "--into")
    target = into.resolve()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist")
        source = path.resolve()
        if target == source or target.is_relative_to(source) or source.is_relative_to(target):
            where = ("is" if target == source else "is inside" if target.is_relative_to(source) else "holds")
            raise UserError(f"--into {into} {where} the source {path}: the compact records would overwrite the runs "
                            "they are read from; give a folder apart from every source")


def load(path):
    """[(run_dir, config, metrics)] of a baseline folder."""
    return records.load_all([path])
