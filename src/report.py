"""Results of a sweep, from its saved records only: table, curves with bands, LR sensitivity.

    python src/report.py outputs/<sweep-name> [--target 70]     (default: the workload's target)
    python src/report.py outputs/mnist outputs/imdb ... --study-dir outputs/study   (several workloads)

Writes into the sweep folder:
    results.md, results.csv   per optimizer: best lr (and the rest of a searched setting), weight decay, final train loss, val loss and
                              val accuracy (where the workload has one) as mean +- std over seeds,
                              epochs to the workload's target (or --target), median seconds per
                              epoch, seeds, diverged runs
    curves.png                best setting per optimizer: mean over seeds, band = min..max
    iterations.png            per-iteration train loss at the best setting, log axis
    lr_sensitivity.png        final metric against learning rate, diverged runs marked x
    tuning_curves.png         expected best result after k trials, k = 1..budget (Dodge et al., 2019)
    runs.csv, results.tex     every run's every epoch, tidy (src/export.py); the results table in LaTeX
    figure3.png               train loss over the first 3 epochs (linear) beside all epochs (log),
                              the layout of the paper's Figure 3

Given several sweeps (one per workload), it also writes into --study-dir:
    study.md, study.csv       per workload and optimizer: epochs to the workload's target at the pick
                              (median over seeds) and its ratio to the best optimizer's
    performance_profile.png   AlgoPerf's performance profiles: the fraction of workloads on which
                              each optimizer reaches the target within tau times the best's epochs
    win_rate.png              how often each optimizer ends better than each other one, over every
                              workload and seed both finished (at their picks, on each sweep's
                              selection metric); the matrix is also in study.md
    study_runs.csv            every run of every sweep, tidy
--html PATH writes all of it, every sweep and the study, as one self-contained page (src/page.py).
"""
import statistics
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np

import export
import plot
import records
import space
import sweep
from cli import Parser, UserError, finite_float, positive_int, run_main

plt = plot.plt
Run = namedtuple("Run", "optimizer setting seed metrics")      # one record of the sweep


def build_parser():
    p = Parser(description="Tables and figures of a finished (or partial) sweep.")
    p.add_argument("sweep_dirs", nargs="+", metavar="sweep_dir", help="the sweep folder (holds sweep.json); several "
                   "make a study across workloads")
    p.add_argument("--study-dir", help="with several sweeps: where the table and performance profiles across them go")
    p.add_argument("--baselines", help="a shipped baseline sweep or folder of sweeps (baselines/...): their picks join the table and "
                                       "curves where comparable with the sweep's runs (src/baselines.py)")
    p.add_argument("--html", help="also write everything as one self-contained HTML page here (figures embedded)")
    p.add_argument("--target", type=finite_float,
                   help="value of the workload's target metric (val accuracy %%, or val loss) for epochs-to-target "
                        "(default: the workload's, e.g. 70%% for cifar10-cnn)")
    p.add_argument("--smooth", type=positive_int, default=plot.SMOOTH, help=f"iterations averaged (default: {plot.SMOOTH})")
    p.add_argument("--trust-pickles", action="store_true",
                   help=records.TRUST_PICKLES_HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    sweep_dirs = [Path(d) for d in args.sweep_dirs]
    if len(sweep_dirs) > 1 and not args.study_dir:
        raise UserError("several sweeps: give --study-dir DIR for the table and performance profiles across them")
    if len(sweep_dirs) > 1 and args.target is not None:
        raise UserError("--target is one sweep's; across sweeps each is read against its workload's target")
    if args.html:
        records.ensure_writable(Path(args.html).resolve().parent, "--html")
    sections = [s for sweep_dir in sweep_dirs
                for s in report_sweep(sweep_dir, args.target, args.smooth, args.trust_pickles, args.baselines)]
    if len(sweep_dirs) > 1:
        sections = report_study(sweep_dirs, Path(args.study_dir), args.trust_pickles) + sections
    if args.html:
        import page
        title = f"Study: {', '.join(d.name for d in sweep_dirs)}"
        print(f"page: {page.write(args.html, title, sections)}")
    return 0


def report_sweep(sweep_dir, target, smooth, trust_pickles=False, baselines_dir=None):
    """One sweep's tables, verdicts and figures, into its folder -> its sections of the HTML page.
    Comparable baselines' picks join the table and the curves, marked (baseline); verdicts and
    tuning curves stay the sweep's own."""
    plan = load_plan(sweep_dir)
    records.ensure_writable(sweep_dir)
    runs = collect(sweep_dir, plan, trust_pickles)
    best = {opt: [r.metrics for r in at_picks(runs, plan) if r.optimizer == opt] for opt in plan["optimizers"]}
    best = {opt: ms for opt, ms in best.items() if ms}
    if not best:
        raise UserError(f"{sweep_dir}: no finished runs at a chosen setting yet")
    target = on_recorded_split(workload_target(sweep_dir, plan, target), [m for ms in best.values() for m in ms])
    rows = [table_row(opt, plan, ms, target) for opt, ms in best.items()]
    shipped = baseline_picks(baselines_dir, sweep_dir, runs) if baselines_dir else {}
    rows += [{**table_row(opt, base_plan, ms, target), "optimizer": f"{label} (baseline)"}
             for label, (opt, base_plan, ms) in shipped.items()]
    verdicts = comparisons(runs, plan)
    write_tables(rows, plan, sweep_dir, target, verdicts)
    groups = {opt: [m for m in ms if m["epoch"]] for opt, ms in best.items()}
    groups.update({f"{label} (baseline)": ms for label, (_, _, ms) in shipped.items()})
    for note in plot.notes(groups):
        print(f"note: {note}")
    plot.plot_epochs(groups, sweep_dir / "curves.png", log_y=False)
    plot.plot_iterations(groups, sweep_dir / "iterations.png", smooth, log_y=True)
    plot_sensitivity(runs, plan, sweep_dir / "lr_sensitivity.png")
    plot_figure3(groups, sweep_dir / "figure3.png", smooth)
    plot_tuning_curves(runs, plan, sweep_dir / "tuning_curves.png")
    export.write_tidy_csv(export.tidy_rows([sweep_dir], trust_pickles), sweep_dir / "runs.csv")
    print((sweep_dir / "results.md").read_text())
    return sweep_sections(sweep_dir, plan, rows, verdicts, target, runs)


def sweep_sections(sweep_dir, plan, rows, verdicts, target, runs):
    import page
    r = at_picks(runs, plan)[0]
    config = records.load_json(records.sweep_run_dir(sweep_dir, r.optimizer, r.setting, r.seed) / records.CONFIG)
    figures = [("curves.png", "best setting per optimizer: mean over seeds, band = min..max"),
               ("iterations.png", "per-iteration training loss at the best setting"),
               ("lr_sensitivity.png", f"final {plan['select']} of seed {plan['seeds'][0]} against the learning rate"),
               ("tuning_curves.png", "expected best result after k trials (Dodge et al., 2019)"),
               ("figure3.png", "the first 3 epochs per iteration beside all epochs (the paper's Figure 3)")]
    header = list(dict.fromkeys(k for row in rows for k in row))
    return [(f"Sweep {plan['name']}: settings and provenance", page.paragraphs([
                f"Workload {config['workload']['name']}; validation: {split_words(plan)}.",
                f"Selection: {plan['select']} of seed {plan['seeds'][0]} over {selection_words(plan)}; "
                f"{plan['epochs']} epochs; epochs to reach {target_words(target)}."]) + page.provenance(config, plan)),
            (f"Sweep {plan['name']}: results", page.paragraphs([
                "Mean ± std over seeds at each optimizer's pick; final_val_* columns are the held-out validation "
                "split, final_test_* the test split (reported, never selected on)."]) + page.table(header, rows)
             + page.paragraphs([f"Verdicts: paired differences at the picks ({stats_words()})."])
             + page.items([v.lstrip("- ") for v in verdicts])),
            (f"Sweep {plan['name']}: figures", "".join(page.image(sweep_dir / name, caption) for name, caption in figures))]


def baseline_picks(folder, sweep_dir, runs):
    """{label: (optimizer, the baseline sweep's plan, its picks' metrics)} of a shipped baseline folder (one
    sweep, or a folder of sweeps such as baselines/figure1), where its runs are comparable with this
    sweep's (what is not, or differs, is said in one line). An optimizer found in two comparable
    sweeps is labelled with each sweep's name, so that their picks never mix."""
    import baselines
    folder = Path(folder)
    sweeps = [folder] if (folder / "sweep.json").is_file() else sorted(p.parent for p in folder.rglob("sweep.json"))
    if not sweeps:
        raise UserError(f"--baselines {folder}: no sweep.json in it (give a folder of baselines/)")
    config = lambda where, r: records.load_json(records.sweep_run_dir(where, r.optimizer, r.setting, r.seed) / records.CONFIG)
    reference, found = config(sweep_dir, runs[0]), []
    for where in sweeps:
        plan = load_plan(where)
        kept, notes = baselines.comparable([(r, config(where, r), r.metrics) for r in at_picks(collect(where, plan), plan)],
                                           reference)
        for note in notes:
            print(f"note: {where}: {note}")
        found += [(r.optimizer, plan, metrics) for r, _, metrics in kept]
    sweeps_of = {}
    for opt, plan, _ in found:
        sweeps_of.setdefault(opt, set()).add(plan["name"])
    out = {}
    for opt, plan, metrics in found:
        label = opt if len(sweeps_of[opt]) == 1 else f"{opt}, {plan['name']}"
        out.setdefault(label, (opt, plan, []))[2].append(metrics)
    return out


def load_plan(sweep_dir):
    if not (Path(sweep_dir) / "sweep.json").is_file():
        raise UserError(f"{sweep_dir}: no sweep.json here (not a sweep folder made by src/sweep.py)")
    return records.load_json(Path(sweep_dir) / "sweep.json")


def collect(sweep_dir, plan, trust_pickles=False):
    """[Run] for every run of the plan that has a record."""
    runs = []
    for opt, settings in sweep.planned_settings(plan).items():
        for setting in settings:
            for seed in plan["seeds"]:
                directory = records.sweep_run_dir(sweep_dir, opt, setting, seed)
                if records.has_metrics(directory):
                    runs.append(Run(opt, setting, seed, records.load_run(directory, trust_pickles)[1]))
    return runs


def at_picks(runs, plan):
    picks = sweep.best_settings(plan)
    return [r for r in runs if r.setting == picks.get(r.optimizer)]


def first_seed(runs, plan, opt):
    """The optimizer's stage-1 runs: every setting, the first seed."""
    return [r for r in runs if r.optimizer == opt and r.seed == plan["seeds"][0]]


def workload_target(sweep_dir, plan, value):
    """(metric, value) for epochs-to-target: the workload's (from a run record), value overridable."""
    opt, setting = next((o, s) for o, s in sweep.best_settings(plan).items() if s is not None)
    config = records.load_json(records.sweep_run_dir(sweep_dir, opt, setting, plan["seeds"][0]) / records.CONFIG)
    metric, default = config.get("workload", {}).get("target", ("val_acc", 70.0))   # older records: the CNN's
    return metric, default if value is None else value


def on_recorded_split(target, runs):
    """A workload's target names the validation split; without one (--val-split 0) it is read on
    the test split, and the tables say so."""
    metric, value = target
    if metric.startswith("val_") and not all(metric in m for m in runs):
        metric = "test_" + metric[len("val_"):]
    return metric, value


def mean_std(values):
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values) if len(values) > 1 else 0:.2g}"


def epochs_to_target(metrics, target):
    """The first epoch at which the target metric reaches its value: accuracy up, loss down."""
    metric, value = target
    reached = (lambda v: v >= value) if metric.endswith("acc") else (lambda v: v <= value)
    return next((e for e, v in zip(metrics["epoch"], metrics[metric]) if reached(v)), None)


def table_row(opt, plan, runs, target):
    finished = [m for m in runs if m["status"] != "diverged"]
    reached = [e for e in (epochs_to_target(m, target) for m in finished) if e is not None]
    seconds = [s for m in runs for s in m["seconds"][1:]]
    last = lambda key: [m[key][-1] for m in finished]
    pick = sweep.best_settings(plan)[opt]
    row = {"optimizer": opt, "best_lr": pick["lr"]}
    if plan.get("trials"):
        row["best_setting"] = space.words({k: v for k, v in pick.items() if k not in ("lr", "weight_decay")}) or "-"
    row.update(weight_decay=pick.get("weight_decay", plan["weight_decay"]), final_train_loss=mean_std(last("train_loss")))
    for key in (f"{split}_{kind}" for split in ("val", "test") for kind in ("loss", "acc")):
        if all(key in m for m in runs):
            row[f"final_{key}"] = mean_std(last(key))
    return {**row,
            "epochs_to_target": (f"{statistics.mean(reached):.3g} ({len(reached)}/{len(finished)} seeds)"
                                 if reached else f"not reached (0/{len(finished)})"),
            "median_s_per_epoch": f"{statistics.median(seconds):.3g}" if seconds else "n/a",
            "seeds": len(runs), "diverged": len(runs) - len(finished)}


# What the verdicts compare: (metric, words, higher is better, unit), where the runs have it.
COMPARED = [("val_acc", "final validation accuracy", True, " points"), ("test_acc", "final test accuracy", True, " points"),
            ("train_loss", "final training loss", False, "")]


def comparisons(runs, plan):
    """Every pair of optimizers at their picks, per metric, on the seeds both finished: paired t
    intervals and one sentence each. Selection is over; the test split may now be reported."""
    import stats
    lines = []
    picked = at_picks(runs, plan)
    for key, words, higher, unit in COMPARED:
        results = {opt: {r.seed: r.metrics[key][-1] for r in picked
                         if r.optimizer == opt and r.metrics["status"] == "complete" and key in r.metrics}
                   for opt in plan["optimizers"]}
        results = {opt: r for opt, r in results.items() if r}
        lines += [f"- {sentence}" for _, _, _, sentence in stats.pairwise(results, words, higher, unit)]
    return lines


def write_tables(rows, plan, sweep_dir, target, verdicts=()):
    header = list(dict.fromkeys(key for row in rows for key in row))     # every row's columns, in order
    rows = [{key: row.get(key, "n/a") for key in header} for row in rows]
    records.atomic_write(sweep_dir / "results.csv", lambda tmp: export.write_csv(tmp, header, rows))
    export.write_latex(rows, sweep_dir / "results.tex", f"Sweep {plan['name']}: {selection_words(plan)}; "
                                                        f"{plan['epochs']} epochs; mean ± std over seeds.")
    lines = [f"# Sweep {plan['name']}", "",
             f"Validation: {split_words(plan)}. Selection: {plan['select']} of seed {plan['seeds'][0]} over "
             f"{selection_words(plan)}; weight decay {plan['weight_decay']} for every optimizer"
             f"{' unless searched' if plan.get('trials') else ''}; {plan['epochs']} epochs; "
             f"values are mean ± std over seeds; epochs to reach {target_words(target)}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows]
    if verdicts:
        lines += ["", f"## Verdicts: paired differences at the picks ({stats_words()})", "", *verdicts]
    records.atomic_write(sweep_dir / "results.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def selection_words(plan):
    if not plan.get("trials"):
        return f"lr {plan['lrs']}"
    spaces = "; ".join(f"{opt}: " + ", ".join(f"{name} {lo:g}..{hi:g} {scale}" for name, (lo, hi, scale) in dims.items())
                       for opt, dims in plan["space"].items())
    return f"{plan['trials']} quasi-random (Sobol, sampler seed {plan['sampler_seed']}) trials per optimizer ({spaces})"


def split_words(plan):
    if plan.get("val_split"):
        return (f"{plan['val_split']:g} {'of the training set' if plan['val_split'] < 1 else 'training samples'} "
                "held out (val); the test split is only reported, never selected on")
    return "no split held out; the test split is only reported (the tutorial calls it 'validation')"


def stats_words():
    import stats
    return (f"{stats.CONFIDENCE:.0%} paired t intervals over the seeds both optimizers finished; the same seed "
            "means the same initialisation and data order")


def plot_tuning_curves(runs, plan, path):
    """Expected best result after k trials of the grid (Dodge et al., 2019), k = 1..grid size: does
    the ranking depend on how much tuning each optimizer gets? Diverged trials count as the worst."""
    import stats
    select = plan["select"]
    sign = -1 if select == "val_acc" else 1          # sweep.final_metric is lower-is-better: -best val acc
    fig, ax = plt.subplots(figsize=(7, 5))
    for opt in plan["optimizers"]:
        values = [sweep.final_metric(r.metrics, select) for r in first_seed(runs, plan, opt)]
        if values:
            curve = [sign * v for v in stats.tuning_curve(values, higher_is_better=False)]
            ax.plot(range(1, len(curve) + 1), curve, marker="o", color=plot.color(opt), label=opt)
    ax.set_xlabel("trials (drawn at random from the " + ("search's" if plan.get("trials") else "grid's") + " trials)")
    ax.set_ylabel(f"expected best {'validation accuracy (%)' if sign < 0 else 'final train loss'}")
    if sign > 0:
        ax.set_yscale("log")
    ax.set_title(f"tuning curves, seed {plan['seeds'][0]}")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return plot.save(fig, path)


def target_words(target):
    metric, value = target
    split = "val" if metric.startswith("val_") else "test"
    return f"{value:g}% {split} accuracy" if metric.endswith("acc") else f"{metric.replace('_', ' ')} {value:g}"


def plot_sensitivity(runs, plan, path):
    fig, ax = plt.subplots(figsize=(7, 5))
    key = "train_loss" if plan["select"] == "train_loss" else "val_acc"
    line = "none" if plan.get("trials") else "-"     # searched settings differ in more than lr: no line
    for opt in plan["optimizers"]:
        points = sorted(((r.setting["lr"], r.metrics) for r in first_seed(runs, plan, opt)), key=lambda p: p[0])
        ok = [(lr, m[key][-1] if key == "train_loss" else max(m[key])) for lr, m in points if m["status"] != "diverged"]
        if ok:
            ax.plot(*zip(*ok), marker="o", linestyle=line, color=plot.color(opt), label=opt)
        bad = [lr for lr, m in points if m["status"] == "diverged"]
        if bad:
            ax.plot(bad, [1.0] * len(bad), "x", markersize=10, color=plot.color(opt),
                    transform=ax.get_xaxis_transform(), clip_on=False, label=f"{opt} diverged")
    ax.set_xscale("log")
    if key == "train_loss":
        ax.set_yscale("log")   # a rate just short of diverging can end at a loss of 1e13
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final train loss" if key == "train_loss" else "best val accuracy (%)")
    ax.set_title(f"seed {plan['seeds'][0]}, weight decay {plan['weight_decay']}")
    ax.grid(alpha=0.3)
    ax.legend()
    return plot.save(fig, path)


def plot_figure3(groups, path, window):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for opt, runs in groups.items():
        n = min(3 * runs[0]["iters_per_epoch"], min(len(m["iter_loss"]) for m in runs))
        if n:
            losses = np.array([m["iter_loss"][:n] for m in runs], dtype=float).mean(0)
            w = min(window, n)
            left.plot(np.arange(w, n + 1) / runs[0]["iters_per_epoch"], plot.moving_average(losses, w),
                      color=plot.color(opt), label=opt)
        plot.draw_band(right, *plot.stack(runs, "train_loss"), label=opt, color=plot.color(opt))
    left.set(title="first 3 epochs (per iteration, moving average)", xlabel="epoch", ylabel="training cost")
    right.set(title="all epochs", xlabel="epoch", ylabel="training cost", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    return plot.save(fig, path)



# ---------------------------------------------------------------- across workloads

TAU_MAX = 4.0                   # AlgoPerf's profiles and score run tau from 1 to 4


def report_study(sweep_dirs, study_dir, trust_pickles=False):
    """One table and the performance profiles over several sweeps, from their records only."""
    import stats
    times, rows, names, finals = {}, [], [], {}
    for sweep_dir in sweep_dirs:
        row, workload_times = study_row(sweep_dir, trust_pickles)
        finals[row["workload"]] = final_scores(sweep_dir, trust_pickles)
        if row["workload"] in times:
            row["workload"] = f"{row['workload']} ({sweep_dir.name})"      # two sweeps of one workload
        times[row["workload"]] = workload_times
        rows.append(row)
        names += [opt for opt in workload_times if opt not in names]
    ratios = stats.performance_ratios(times)
    taus = np.linspace(1.0, TAU_MAX, 301)
    profiles = {opt: stats.performance_profile(ratios, opt, taus) for opt in names}
    for row in rows:
        for opt in names:
            t, r = times[row["workload"]].get(opt, float("inf")), ratios[row["workload"]].get(opt, float("inf"))
            row[opt] = f"{t:.3g} (x{r:.2f})" if np.isfinite(t) else "not reached"
    study_dir.mkdir(parents=True, exist_ok=True)
    records.ensure_writable(study_dir, "--study-dir")
    scores = {opt: stats.profile_score(p, taus) for opt, p in profiles.items()}
    wins = stats.win_rates(list(finals.values()), names)
    write_study_tables(rows, names, scores, wins, study_dir)
    plot_profiles(profiles, taus, len(rows), study_dir / "performance_profile.png")
    plot_win_rates(wins, names, study_dir / "win_rate.png")
    export.write_tidy_csv(export.tidy_rows(sweep_dirs, trust_pickles), study_dir / "study_runs.csv")
    print((study_dir / "study.md").read_text())
    import page
    matrix = [{"": a, **{b: win_words(wins, a, b) for b in names}} for a in names]
    return [("Across workloads", page.paragraphs([
                "Epochs to each workload's target at the optimizer's pick, median over seeds, and the ratio to the "
                "best optimizer's (targets on the validation split where one was held out)."])
             + page.table(study_header(names), rows)
             + page.paragraphs(["Performance-profile score: " + ", ".join(f"{o} {v:.3f}" for o, v in scores.items()),
                                WIN_RATE_WORDS])
             + page.table(["", *names], matrix)
             + page.image(study_dir / "performance_profile.png", "performance profiles (AlgoPerf)")
             + page.image(study_dir / "win_rate.png", "win rates over workloads and seeds"))]


def study_row(sweep_dir, trust_pickles=False):
    """({workload, sweep, target}, {optimizer: median epochs to target over the pick's seeds})."""
    plan = load_plan(sweep_dir)
    picked = at_picks(collect(sweep_dir, plan, trust_pickles), plan)
    if not picked:
        raise UserError(f"{sweep_dir}: no finished runs at a chosen setting yet")
    target = on_recorded_split(workload_target(sweep_dir, plan, None), [r.metrics for r in picked])
    config = records.load_json(records.sweep_run_dir(sweep_dir, picked[0].optimizer, picked[0].setting,
                                                     picked[0].seed) / records.CONFIG)
    times = {}
    for opt in plan["optimizers"]:
        reached = [epochs_to_target(r.metrics, target) if r.metrics["status"] != "diverged" else None
                   for r in picked if r.optimizer == opt]
        times[opt] = float(np.median([e if e is not None else np.inf for e in reached])) if reached else np.inf
    return {"workload": config["workload"]["name"], "sweep": str(sweep_dir), "target": target_words(target),
            "seeds": len(plan["seeds"])}, times


def final_scores(sweep_dir, trust_pickles=False):
    """{optimizer: {seed: lower-is-better final score}} at the picks, on the sweep's selection metric."""
    plan = load_plan(sweep_dir)
    scores = {}
    for r in at_picks(collect(sweep_dir, plan, trust_pickles), plan):
        if r.metrics["status"] in ("complete", "diverged"):
            scores.setdefault(r.optimizer, {})[r.seed] = sweep.final_metric(r.metrics, plan["select"])
    return scores


# What the win-rate matrix counts, said once for study.md and the page.
WIN_RATE_WORDS = ("Win rates: the row's optimizer ends better than the column's in this share of the (workload, seed) "
                  "pairs both finished, on each sweep's selection metric (ties count half; a diverged run loses).")


def study_header(names):
    return ["workload", "sweep", "target", "seeds", *names]


def write_study_tables(rows, names, scores, wins, study_dir):
    header = study_header(names)
    records.atomic_write(study_dir / "study.csv", lambda tmp: export.write_csv(tmp, header, rows))
    lines = ["# Study across workloads", "",
             "Epochs to each workload's target at the optimizer's pick, median over seeds (a seed that never "
             "reaches it, or diverges, counts as never), and in brackets the ratio to the best optimizer's.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *("| " + " | ".join(str(r[h]) for h in header) + " |" for r in rows), "",
             f"Performance-profile score (area under rho(tau) for tau in [1, {TAU_MAX:g}], normalised; 1 = fastest "
             "on every workload): " + ", ".join(f"{opt} {score:.3f}" for opt, score in scores.items()) + ".", "",
             WIN_RATE_WORDS, "",
             "| | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1),
             *(f"| {a} | " + " | ".join(win_words(wins, a, b) for b in names) + " |" for a in names)]
    records.atomic_write(study_dir / "study.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def win_words(wins, a, b):
    rate, n = wins.get((a, b), (None, 0))
    return "-" if a == b or not n else f"{rate:.0%} of {n}"


def plot_win_rates(wins, names, path):
    matrix = np.array([[wins.get((a, b), (np.nan, 0))[0] if a != b else np.nan for b in names] for a in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 1.2 + 0.9 * len(names)))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="RdYlGn")
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j and wins.get((a, b), (0, 0))[1]:
                ax.text(j, i, f"{matrix[i, j]:.0%}\n(n={wins[(a, b)][1]})", ha="center", va="center", fontsize=9)
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="against", ylabel="optimizer", title="win rate over workloads and seeds")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return plot.save(fig, path)


def plot_profiles(profiles, taus, n_workloads, path):
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (opt, rho) in enumerate(profiles.items()):      # styles and widths differ: equal profiles stay visible
        ax.step(taus, rho, where="post", color=plot.color(opt), label=opt, linestyle=("-", "--", ":", "-.")[i % 4],
                linewidth=3.0 - 0.6 * (i % 4))
    ax.set(xlabel="tau: epochs to target relative to the best optimizer on the workload",
           ylabel=f"fraction of workloads (of {n_workloads}) reaching the target", ylim=(-0.03, 1.03),
           title="performance profiles")
    ax.grid(alpha=0.3)
    ax.legend()
    return plot.save(fig, path)


if __name__ == "__main__":
    sys.exit(run_main(main))
