"""Baselines regenerated: each sweep of a baseline folder re-run from the command in its sweep.json,
its settings pinned, then collected back into its place. A shared folder's plans may name the
optimizer code of whoever made them (file.py:Class, module:Class): regenerating imports and runs
that code, so it is listed first and run only with trust_code (baselines.py --trust-code)."""
import os
import shlex
from pathlib import Path

from optstudy.analysis.baselines import collect, load
from optstudy.core.cli import UserError
from optstudy.core.provenance import REPO
from optstudy.experiments.sweep import sweep
from optstudy.records import meaning
from optstudy.training import optimizers


def regenerate(folder, output_dir, data_root=None, dry_run=False, trust_code=False):
    """Every sweep of the folder, re-run from the command in its sweep.json (its runs under
    output_dir/<folder name>/<sweep name>), then collected back into its place in the folder.
    Nothing runs, nor is imported, if a plan names code outside the registry and trust_code is not given."""
    plans = sorted(folder.rglob(meaning.PLAN))
    if not plans:
        raise UserError(f"{folder}: no sweep.json in it (not a baseline folder)")
    plans = [(path, meaning.load_plan(path.parent)) for path in plans]      # every plan read (and checked) first
    runs = load(folder)
    # a batched run records its batch's seconds: its share is that over the batch's trials
    minutes = sum(sum(m.get("seconds", [])) / (c.get("batched") or {}).get("trials", 1) for _, c, m in runs) / 60
    device = (runs[0][1].get("device") or {}) if runs else {}
    cpu = f"{device.get('name', '?')} ({(device.get('cpu') or {}).get('capability', '?')})"
    print(f"{folder}: {len(plans)} sweep(s), {len(runs)} run(s); they trained for {minutes:.1f} min in all "
          f"(summed over runs) on {cpu}")
    external = sorted({name for _, plan in plans for name in external_code(plan)})
    if external:
        print(f"{folder}: its sweeps run optimizer code from outside the registry: {', '.join(external)}"
              + ("" if trust_code else " (not run without --trust-code)"))
        if not (trust_code or dry_run):
            raise UserError(f"{folder}: its sweeps import and run optimizer code that is not in the registry "
                            f"({', '.join(external)}); read it, then pass --trust-code to regenerate (--dry-run lists it)")
    for plan_path, plan in plans:
        argv = command_argv(plan, output_dir / folder.name, data_root)
        print(shlex.join(["python", "src/sweep.py", *command_argv(plan, output_dir / folder.name, data_root, shown=True)]),
              flush=True)
        if not dry_run:
            sweep(argv)
            collect([str(output_dir / folder.name / plan["name"])], plan_path.parent)


# Where the recorded command ran, not what it computed: the machine that regenerates gives its own.
WHERE_FLAGS = ("--output-dir", "--data-root")


def command_argv(plan, output_dir, data_root=None, shown=False):
    """sweep.py's arguments to re-run the plan: its recorded command ("python src/sweep.py ARGS")
    less where it ran (WHERE_FLAGS: the recording machine's folders), each of its flags given once,
    with the plan's resolved settings in place of the recorded ones, then this machine's folders
    (shown: paths inside the repository relative to it, as the printed command runs from there)."""
    where = in_repository if shown else str
    flags = {}
    for flag, values in segments(recorded_args(plan)):
        if flag not in WHERE_FLAGS:
            flags[flag] = values
    for flag, values in segments(pinned(plan)):
        flags[flag] = values
    flags["--output-dir"] = [where(output_dir)]
    if data_root:
        flags["--data-root"] = [where(data_root)]
    return [arg for flag, values in flags.items() for arg in (flag, *values)]


def segments(argv):
    """[(flag, [its values])] of a command line, '--flag=value' as ('--flag', ['value']); a later
    flag of the same name replaces an earlier one, as argparse keeps the last."""
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            out.pop(flag, None)
            out[flag] = [value] if eq else []
            last = flag
        elif out:
            out[last].append(arg)
    return list(out.items())


def in_repository(path):
    """A path inside the repository relative to it (the commands run from its root), else as given."""
    resolved = Path(path).resolve()
    return os.path.relpath(resolved, REPO) if resolved.is_relative_to(REPO) else str(path)


def recorded_args(plan):
    try:
        return shlex.split(plan["command"])[2:]
    except ValueError as err:
        raise UserError(f"sweep {plan['name']}: its recorded command is not a command line ({err})") from None


def external_code(plan):
    """The optimizers of a plan that are code outside the registry (file.py:Class, module:Class): those
    its plan lists and those its recorded command would run (the command is what regenerate runs)."""
    return sorted({name for name in [*plan["optimizers"], *command_optimizers(recorded_args(plan))]
                   if optimizers.is_external(name)})


def command_optimizers(argv):
    """Every value given to --optimizers in a sweep.py command line (every occurrence: a superset of
    what argparse would keep), read without parsing the rest."""
    names, taking = [], False
    for arg in argv:
        if arg.startswith("--optimizers="):
            names.append(arg.partition("=")[2])
        taking = arg == "--optimizers" or (taking and not arg.startswith("--"))
        if taking and arg != "--optimizers":
            names.append(arg)
    return names


def pinned(plan):
    """The plan's resolved settings as flags, after its command's: a default that changed since the
    sweep ran must not change its runs. A plan older than --val-split held nothing out."""
    return ["--val-split", repr(plan.get("val_split") or 0), "--select", plan["select"],
            "--weight-decay", repr(plan["weight_decay"]), "--epochs", str(plan["epochs"])]
