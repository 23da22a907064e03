"""Shipped baselines: compact records of the runs behind the README's studies, to set a new
optimizer beside without re-running them.

    python src/baselines.py collect outputs/studies/mnist-search --into baselines/mnist-search
    python src/plot.py outputs/my-runs --baselines baselines/mnist-search

A compact record is a run's config.json and its metrics.json less the per-minibatch losses and
without checkpoints: the per-epoch metrics and the resolved settings, in the safe JSON format
(a few kB a run). A baseline is drawn only beside runs it is comparable with: the same workload,
data, epochs, batch size, split, limits, schedule, dropout and preprocessing, else it is left out
with one line naming the difference; a different torch version, precision or device type draws it
with one warning line naming them. baselines/README.md says what each set is and how it was made.
"""
import sys
from pathlib import Path

import records
from cli import Parser, run_main

# Settings that change what a run computes: a baseline differing in any is not comparable.
MUST_MATCH = ("workload", "dataset", "data_dir", "epochs", "batch_size", "val_split", "limit_train", "limit_val",
              "lr_schedule", "dropout", "dropout_rate", "preprocess")
# Where results may differ by a little for reasons outside the study: said, not refused.
WARN_IF = {"torch version": lambda c: (c.get("versions") or {}).get("torch"),
           "precision": lambda c: (c.get("precision") or {}).get("used"),
           "device type": lambda c: (c.get("device") or {}).get("type")}


def build_parser():
    p = Parser(description="Make compact baseline records from finished runs.")
    sub = p.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", help="compact records of every finished run under the paths")
    collect.add_argument("paths", nargs="+", help="sweep folders or folders of runs")
    collect.add_argument("--into", required=True, help="the baseline folder to write (e.g. baselines/mnist-search)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    written = collect(args.paths, Path(args.into))
    print(f"{args.into}: {written} compact record(s)")
    return 0


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
    return [(d, *records.load_run(d)) for d in records.find_runs([path])]


def differences(config, reference, keys):
    return [k for k in keys if config["args"].get(k) != reference["args"].get(k)]


def comparable(baseline_runs, reference):
    """(the baseline runs comparable with the reference run's config, one line per kind of
    difference: baselines left out, or drawn with a warning)."""
    kept, left_out, flagged = [], {}, {}
    for run in baseline_runs:
        config = run[1]
        wrong = tuple(f"{k} {config['args'].get(k)} (runs: {reference['args'].get(k)})"
                      for k in MUST_MATCH if config["args"].get(k) != reference["args"].get(k))
        if wrong:
            left_out[wrong] = left_out.get(wrong, 0) + 1
            continue
        kept.append(run)
        warn = tuple(f"{what} {get(config)} (runs: {get(reference)})" for what, get in WARN_IF.items()
                     if get(config) != get(reference))
        if warn:
            flagged[warn] = flagged.get(warn, 0) + 1
    notes = [f"{n} baseline run(s) left out, not comparable: {'; '.join(w)}" for w, n in left_out.items()]
    notes += [f"warning: {n} baseline run(s) drawn though made with another {'; '.join(w)}" for w, n in flagged.items()]
    return kept, notes


if __name__ == "__main__":
    sys.exit(run_main(main))
