"""Baselines regenerated: each sweep of a baseline folder re-run from the command in its sweep.json,
its settings pinned, then collected back into its place."""
import shlex

from optstudy.analysis.baselines import collect, load
from optstudy.core.cli import UserError
from optstudy.experiments.sweep import sweep
from optstudy.records import store as records


def regenerate(folder, output_dir, data_root=None, dry_run=False):
    """Every sweep of the folder, re-run from the command in its sweep.json (its runs under
    output_dir/<folder name>/<sweep name>), then collected back into its place in the folder."""
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
            sweep(argv)
            collect([str(output_dir / folder.name / plan["name"])], plan_path.parent)


def pinned(plan):
    """The plan's resolved settings as flags, after its command's: a default that changed since the
    sweep ran must not change its runs. A plan older than --val-split held nothing out."""
    return ["--val-split", repr(plan.get("val_split") or 0), "--select", plan["select"],
            "--weight-decay", repr(plan["weight_decay"]), "--epochs", str(plan["epochs"])]
