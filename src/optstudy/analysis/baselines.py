"""Shipped baselines: compact records (config.json and the per-epoch metrics, no minibatch losses,
no checkpoint) of the runs behind the README's studies. baselines.py's docstring is the guide;
records/meaning.py says which baseline is comparable with a run. Here too: a sweep's picks set
against a baseline's, the paired verdicts between them, and what each side was given."""
from collections import namedtuple
from pathlib import Path

from optstudy.analysis import stats
from optstudy.core.cli import UserError
from optstudy.records import meaning, store as records

# One baseline optimizer of one baseline sweep: its plan, its finished runs at the pick and its
# finished trials (every setting, every seed), and one pick run's config.
Shipped = namedtuple("Shipped", "optimizer plan picks trials config")
BASELINE = " (baseline)"


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


def run_config(where, r):
    return records.load_json(records.sweep_run_dir(where, r.optimizer, r.setting, r.seed) / records.CONFIG)


def picks(folder, reference):
    """{label: Shipped} of a shipped baseline folder (one sweep, or a folder of sweeps such as
    baselines/figure1), where its runs are comparable with the reference config (what is not, or
    differs, is said in one line). An optimizer found in two comparable sweeps is labelled with
    each sweep's name, so that their picks never mix."""
    folder = Path(folder)
    sweeps = [folder] if (folder / meaning.PLAN).is_file() else sorted(p.parent for p in folder.rglob(meaning.PLAN))
    if not sweeps:
        raise UserError(f"--baselines {folder}: no sweep.json in it (give a folder of baselines/)")
    found = []
    for where in sweeps:
        plan = meaning.load_plan(where)
        finished = meaning.finished(meaning.collect(where, plan), plan)
        picked = meaning.at_picks(finished, plan)
        kept, notes = meaning.comparable([(r, run_config(where, r), r.metrics) for r in picked], reference)
        for note in notes:
            print(f"note: {where}: {note}")
        for opt in dict.fromkeys(r.optimizer for r, _, _ in kept):
            mine = [(r, c) for r, c, _ in kept if r.optimizer == opt]
            found.append((opt, plan, [r for r, _ in mine], [r for r in finished if r.optimizer == opt], mine[0][1]))
    names = [opt for opt, *_ in found]
    return {(opt if names.count(opt) == 1 else f"{opt}, {plan['name']}"): Shipped(opt, plan, chosen, trials, config)
            for opt, plan, chosen, trials, config in found}


def compared_metrics(plan, has):
    """What a verdict against a baseline compares: the baseline's selection metric and the test
    metric, at the last epoch: (key, words, higher is better, unit) for the keys `has` holds."""
    select = (("val_acc", "final validation accuracy", True, " points") if plan["select"] == "val_acc"
              else ("train_loss", "final training loss", False, ""))
    test = ("test_acc", "final test accuracy", True, " points") if "test_acc" in has else ("test_loss", "final test loss", False, "")
    return [m for m in (select, test) if m[0] in has]


def finals(picked, opt, key):
    """{seed: the last epoch's value} of an optimizer's complete runs at its pick."""
    return {r.seed: r.metrics[key][-1] for r in picked
            if r.optimizer == opt and r.metrics["status"] == "complete" and key in r.metrics}


def verdicts(picked, plan, config, shipped):
    """Each of the sweep's picks against each baseline pick: paired t intervals (stats.pairwise)
    over the seeds both ran, less each side's picking seed, on the baseline's selection metric and
    the test metric; first a line on the seeds and their pairing, where a seed does not mean the
    same on both sides a line saying why, and at the end the number of intervals made."""
    lines, made = [], 0
    for label, base in shipped.items():
        name = f"{label}{BASELINE}"
        why_not = meaning.seed_pairing(base.config, config)
        if why_not:
            lines.append(f"- {name}: no paired verdict; its seeds do not mean the same as this sweep's ({why_not}).")
            continue
        choosers = sorted({plan["seeds"][0], base.plan["seeds"][0]})
        common = sorted(set(plan["seeds"]) & {r.seed for r in base.picks})
        lines.append(f"- Against {name} (sweep {base.plan['name']}): seeds both ran {words_of(common)}; seed "
                     f"{words_of(choosers)} picked the settings ({'on both sides' if len(choosers) == 1 else 'one side each'}) "
                     f"and do{'es' if len(choosers) == 1 else ''} not judge them; the same seed is the same initialisation "
                     "and data order on both sides (checked: the same workload, data, split sizes, model and batch size).")
        has = set(base.picks[0].metrics) & {k for r in picked for k in r.metrics}
        for key, what, higher, unit in compared_metrics(base.plan, has):
            for opt in plan["optimizers"]:
                results = {opt: finals(picked, opt, key), name: finals(base.picks, base.optimizer, key)}
                if not results[opt]:
                    continue
                rows = stats.pairwise(results, what, higher, unit,
                                      exclude={opt: [plan["seeds"][0]], name: [base.plan["seeds"][0]]})
                made += stats.intervals_made(rows)
                lines += [f"- {sentence}" for *_, sentence in rows]
    if made:
        lines.append(f"- {stats.comparisons_note(made)}")
    return lines


def words_of(seeds):
    return ", ".join(map(str, seeds)) or "none"


def budget(name, plan, opt, n_picked):
    """What one side was given, in one sentence: settings tried, the dimensions searched, epochs,
    seeds at the pick, and whether the pick is at the edge of what was tried (the best may lie beyond)."""
    tried = meaning.planned_settings(plan)[opt]
    pick = meaning.best_settings(plan).get(opt) or {}
    dims = [d for d in dict.fromkeys(k for s in tried for k in s) if len({s.get(d) for s in tried}) > 1]
    if plan.get("trials"):
        space = plan.get("space", {}).get(opt, {})
        how = (f"a quasi-random (Sobol) search over {len(space)} dimension(s): "
               + ", ".join(f"{d} {lo:g}..{hi:g} ({scale})" for d, (lo, hi, scale) in space.items()))
    else:
        how = f"a grid over 1 dimension: lr {', '.join(f'{lr:g}' for lr in plan['lrs'])}"
    edges = [d for d in dims if d in pick and pick[d] in (min(s[d] for s in tried if d in s), max(s[d] for s in tried if d in s))]
    edge = (f"; its pick ({meaning.setting_words(pick)}) is at the edge of the tried {', '.join(edges)} values, so the "
            "best may lie beyond" if edges else f"; its pick ({meaning.setting_words(pick)}) is inside the tried range")
    return (f"{name}: {len(tried)} setting(s) tried by seed {plan['seeds'][0]} ({how}), {plan['epochs']} epochs, "
            f"{n_picked} seed(s) at the pick{edge}.")


def budgets(plan, picked, shipped):
    """Each side's budget (budget()), the sweep's optimizers first, then a line where they differ."""
    lines = [budget(opt, plan, opt, len({r.seed for r in picked if r.optimizer == opt})) for opt in plan["optimizers"]]
    lines += [budget(f"{label}{BASELINE}", b.plan, b.optimizer, len(b.picks)) for label, b in shipped.items()]
    sizes = {len(meaning.planned_settings(plan)[opt]) for opt in plan["optimizers"]}
    sizes |= {len(meaning.planned_settings(b.plan)[b.optimizer]) for b in shipped.values()}
    if len(sizes) > 1:
        lines.append("The budgets differ: a side that tried more settings, or searched more dimensions, had more "
                     "chances to find a good one; a verdict compares the optimizers and their budgets together.")
    return lines
