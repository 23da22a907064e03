"""Shipped baselines: compact records of the runs behind the README's studies, to set a new
optimizer beside without re-running them.

    python src/baselines.py collect outputs/studies/mnist-search --into baselines/mnist-search
    python src/plot.py outputs/my-runs --baselines baselines/mnist-search
    python src/baselines.py regenerate baselines/figure1 [--dry-run]    # re-run them from their commands

A compact record is a run's config.json and its metrics.json less the per-minibatch losses and
without checkpoints: the per-epoch metrics and the resolved settings, in the safe JSON format
(a few kB a run). A baseline is drawn only beside runs it is comparable with: the same workload,
data, epochs, batch size, split, limits, schedule, dropout and preprocessing, else it is left out
with one line naming the difference; a different torch version, precision or device type draws it
with one warning line naming them. baselines/README.md says what each set is and how it was made.
"""
import shlex
import sys
from pathlib import Path

import records
from cli import Parser, UserError, run_main

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
    again = sub.add_parser("regenerate", help="re-run the sweeps behind baseline folders from their recorded "
                                              "commands, then collect them into the same folders")
    again.add_argument("folders", nargs="+", help="baseline folders (e.g. baselines/figure1)")
    again.add_argument("--output-dir", default="outputs/baselines",
                       help="where the full runs go (default: %(default)s)")
    again.add_argument("--data-root", help="the data root, where it is not the one recorded in the commands")
    again.add_argument("--dry-run", action="store_true", help="print the commands and recorded times only")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "regenerate":
        for folder in map(Path, args.folders):
            regenerate(folder, Path(args.output_dir), args.data_root, args.dry_run)
        return 0
    written = collect(args.paths, Path(args.into))
    print(f"{args.into}: {written} compact record(s)")
    return 0


def regenerate(folder, output_dir, data_root=None, dry_run=False):
    """Every sweep of the folder, re-run from the command in its sweep.json (its runs under
    output_dir/<folder name>/<sweep name>), then collected back into its place in the folder."""
    import sweep
    plans = sorted(folder.rglob("sweep.json"))
    if not plans:
        raise UserError(f"{folder}: no sweep.json in it (not a baseline folder)")
    runs = load(folder)
    # a batched run records its batch's seconds: its share is that over the batch's trials
    minutes = sum(sum(m["seconds"]) / (c.get("batched") or {}).get("trials", 1) for _, c, m in runs) / 60
    device = (runs[0][1].get("device") or {}) if runs else {}
    cpu = f"{device.get('name', '?')} ({(device.get('cpu') or {}).get('capability', '?')})"
    print(f"{folder}: {len(plans)} sweep(s), {len(runs)} run(s); they trained for {minutes:.1f} min in all "
          f"(summed over runs) on {cpu}")
    for plan_path in plans:
        plan = records.load_json(plan_path)
        # sweep.py records "python src/sweep.py ARGS"; a later --output-dir overrides the recorded one
        argv = [*shlex.split(plan["command"])[2:], *pinned(plan), "--output-dir", str(output_dir / folder.name)]
        argv += ["--data-root", data_root] if data_root else []
        print(shlex.join(["python", "src/sweep.py", *argv]), flush=True)
        if not dry_run:
            sweep.main(argv)
            collect([str(output_dir / folder.name / plan["name"])], plan_path.parent)


def pinned(plan):
    """The plan's resolved settings as flags, after its command's: a default that changed since the
    sweep ran must not change its runs. A plan older than --val-split held nothing out."""
    return ["--val-split", repr(plan.get("val_split") or 0), "--select", plan["select"],
            "--weight-decay", repr(plan["weight_decay"]), "--epochs", str(plan["epochs"])]


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
