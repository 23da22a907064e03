"""The report of one sweep or a study of several, made from their saved records only (report.py's
docstring lists what it writes). The numbers come from stats.py, the figures from plotting.py.
"""
import dataclasses
import statistics
from pathlib import Path

import numpy as np

from optstudy.analysis import baselines, export, page, plotting as plot, stats
from optstudy.core.cli import UserError
from optstudy.records import meaning, store as records
from optstudy.records.meaning import at_picks, collect, first_seed, load_plan

plt = plot.plt




def report(sweep_dirs, study_dir=None, baselines=None, html=None, target=None, smooth=plot.SMOOTH,
           trust_pickles=False, win_weighting="pair"):
    """Every sweep's tables and figures into its folder; with several sweeps, the study across them
    into study_dir; with html, all of it as one page. Reads saved records only -> exit status 0."""
    sweep_dirs = [Path(d) for d in sweep_dirs]
    if len(sweep_dirs) > 1 and not study_dir:
        raise UserError("several sweeps: give --study-dir DIR for the table and performance profiles across them")
    if len(sweep_dirs) > 1 and target is not None:
        raise UserError("--target is one sweep's; across sweeps each is read against its workload's target")
    if html:
        records.check_file_target(html, "--html")                 # a folder there: refused before the work
    if len(sweep_dirs) > 1:
        records.ensure_writable(Path(study_dir), "--study-dir")   # a file there: refused before the work
    sections = [s for sweep_dir in sweep_dirs for s in report_sweep(sweep_dir, target, smooth, trust_pickles, baselines)]
    if len(sweep_dirs) > 1:
        sections = report_study(sweep_dirs, Path(study_dir), trust_pickles, win_weighting) + sections
    if html:
        title = f"Study: {', '.join(d.name for d in sweep_dirs)}"
        print(f"page: {page.write(html, title, sections)}")
    return 0


def report_sweep(sweep_dir, target, smooth, trust_pickles=False, baselines_dir=None):
    """One sweep's tables, verdicts and figures, into its folder -> its sections of the HTML page.
    Comparable baselines' picks join the table, the curves, the sensitivity and tuning curves,
    marked (baseline), and each of the sweep's picks gets paired verdicts against each of theirs,
    with each side's budget (analysis/baselines.py). Only finished runs (complete at the plan's
    length, or diverged) make a value; each row says how many of its planned runs it rests on."""
    plan = load_plan(sweep_dir)
    records.ensure_writable(sweep_dir)
    runs = finished_only(collect(sweep_dir, plan, trust_pickles), plan, sweep_dir)
    picked = at_picks(runs, plan)
    best = {opt: [r.metrics for r in picked if r.optimizer == opt] for opt in plan["optimizers"]}
    best = {opt: ms for opt, ms in best.items() if ms}
    if not best:
        raise UserError(f"{sweep_dir}: no finished runs at a chosen setting yet")
    config = baselines.run_config(sweep_dir, picked[0])
    target = on_recorded_split(workload_target(sweep_dir, plan, target), [m for ms in best.values() for m in ms])
    shipped = baselines.picks(baselines_dir, config) if baselines_dir else {}
    rows = [timed(table_row(opt, plan, ms, target), config) for opt, ms in best.items()]
    rows += [baseline_row(label, base, target, config) for label, base in shipped.items()]
    verdicts = comparisons(runs, plan)
    versus = baselines.verdicts(picked, plan, config, shipped) if shipped else []
    budget = baselines.budgets(plan, picked, shipped) if shipped else []
    write_tables(rows, plan, sweep_dir, target, verdicts, versus, budget)
    groups = {opt: [m for m in ms if m["epoch"]] for opt, ms in best.items()}
    groups.update({f"{label}{plot.BASELINE}": [r.metrics for r in base.picks] for label, base in shipped.items()})
    for note in plot.notes(groups):
        print(f"note: {note}")
    plot.plot_epochs(groups, sweep_dir / "curves.png", log_y=True)
    plot.plot_iterations(groups, sweep_dir / "iterations.png", smooth, log_y=True)
    sides = [(opt, plan, first_seed(runs, plan, opt)) for opt in plan["optimizers"]]
    sides += [(f"{label}{plot.BASELINE}", base.plan, first_seed(base.trials, base.plan, base.optimizer))
              for label, base in shipped.items()]
    plot_sensitivity(sides, plan, sweep_dir / "lr_sensitivity.png")
    plot_figure3(groups, sweep_dir / "figure3.png", smooth)
    plot_tuning_curves(sides, plan, sweep_dir / "tuning_curves.png")
    export.write_tidy_csv(export.tidy_rows([sweep_dir], trust_pickles), sweep_dir / "runs.csv")
    print((sweep_dir / "results.md").read_text())
    return sweep_sections(sweep_dir, plan, rows, verdicts + versus, target, config, budget)


def timed(row, config):
    """The row with, after its seconds, what they were measured on (timed_on)."""
    out = {}
    for key, value in row.items():
        out[key] = value
        if key == "median_s_per_epoch":
            out["timed_on"] = meaning.timing_words(config)
    return out


def baseline_row(label, base, target, config):
    """A baseline pick's row; its seconds only where they were measured as the sweep's were (the
    same machine, threads and batching), else left out and said."""
    row = timed({**table_row(base.optimizer, base.plan, [r.metrics for r in base.picks], target),
                 "optimizer": f"{label}{plot.BASELINE}"}, base.config)
    if meaning.timing_words(base.config) != meaning.timing_words(config):
        row["median_s_per_epoch"] = (f"not compared ({row['median_s_per_epoch']} s, timed otherwise than this sweep: "
                                     "see timed_on)")
    return row


def finished_only(runs, plan, where):
    """The finished runs, with a line on those left out (interrupted, failed, or of another length
    than planned: averaged in, they would pass a part-trained model off as a final result)."""
    kept = meaning.finished(runs, plan)
    left = [r for r in runs if meaning.state(r.metrics, plan["epochs"]) != "finished"]
    if left:
        words = "; ".join(f"{r.optimizer} {meaning.setting_words(r.setting)} seed {r.seed} "
                          f"{meaning.state(r.metrics, plan['epochs'])}" for r in left[:3])
        print(f"note: {where}: {len(left)} unfinished run(s) left out of every value, verdict and figure ({words}"
              f"{'; ...' if len(left) > 3 else ''})")
    return kept


def sweep_sections(sweep_dir, plan, rows, verdicts, target, config, budget=()):
    select = "final train loss" if plan["select"] == "train_loss" else "best validation accuracy over the epochs (what the selection reads)"
    figures = [("curves.png", "best setting per optimizer: mean over seeds, band = min..max; y zoomed to where the "
                              "curves differ, the full range in the inset; loss axes logarithmic"),
               ("iterations.png", "per-iteration training loss at the best setting"),
               ("lr_sensitivity.png", f"{select} of seed {plan['seeds'][0]} (each side's picking seed) against the "
                                      "learning rate, baselines beside the sweep's"),
               ("tuning_curves.png", "expected best result after k trials drawn with replacement (Dodge et al., 2019)"),
               ("figure3.png", "the first 3 epochs per iteration beside all epochs (the paper's Figure 3)")]
    header = list(dict.fromkeys(k for row in rows for k in row))
    return [(f"Sweep {plan['name']}: settings and provenance", page.paragraphs([
                f"Workload {config['workload']['name']}; validation: {split_words(plan)}.",
                f"Selection: {plan['select']} of seed {plan['seeds'][0]} over {selection_words(plan)}; "
                f"{plan['epochs']} epochs; {weight_decay_words(plan)}; epochs to reach {target_words(target)}."])
             + page.provenance(config, plan)),
            (f"Sweep {plan['name']}: results", page.paragraphs([
                "Mean ± std over seeds at each optimizer's pick; final_val_* columns are the held-out validation "
                "split, final_test_* the test split (reported, never selected on)."]) + page.table(header, rows)
             + (page.paragraphs(["What each side was given:"]) + page.items(list(budget)) if budget else "")
             + page.paragraphs([f"Verdicts: paired differences at the picks ({stats_words(plan)})."])
             + page.items([v.lstrip("- ") for v in verdicts])),
            (f"Sweep {plan['name']}: figures", "".join(page.image(sweep_dir / name, caption) for name, caption in figures))]


def workload_target(sweep_dir, plan, value):
    """(metric, value) for epochs-to-target: the workload's (from a run record), value overridable."""
    opt, setting = next((o, s) for o, s in meaning.best_settings(plan).items() if s is not None)
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
    """One optimizer's row from its pick's finished runs (diverged ones among them: counted, and
    left out of the final values), saying how many of the plan's runs at the pick it rests on."""
    finished = [m for m in runs if m["status"] != "diverged"]
    reached = [e for e in (epochs_to_target(m, target) for m in finished) if e is not None]
    seconds = [s for m in runs for s in m["seconds"][1:]]
    last = lambda key: [m[key][-1] for m in finished]
    pick = meaning.best_settings(plan)[opt]
    row = {"optimizer": opt, "best_lr": pick["lr"]}
    if plan.get("trials"):
        row["best_setting"] = meaning.setting_words({k: v for k, v in pick.items() if k not in ("lr", "weight_decay")}) or "-"
    row.update(weight_decay=pick.get("weight_decay", plan["weight_decay"]), final_train_loss=mean_std(last("train_loss")))
    for key in (f"{split}_{kind}" for split in ("val", "test") for kind in ("loss", "acc")):
        if all(key in m for m in runs):
            row[f"final_{key}"] = mean_std(last(key))
    return {**row,
            "epochs_to_target": (f"{statistics.mean(reached):.3g} ({len(reached)}/{len(finished)} seeds)"
                                 if reached else f"not reached (0/{len(finished)})"),
            "median_s_per_epoch": f"{statistics.median(seconds):.3g}" if seconds else "n/a",
            "seeds": len(runs), "diverged": len(runs) - len(finished),
            "runs": f"{len(runs)} of {len(plan['seeds'])} finished"}


# What the verdicts compare: (metric, words, higher is better, unit), where the runs have it.
COMPARED = [("val_acc", "final validation accuracy", True, " points"), ("test_acc", "final test accuracy", True, " points"),
            ("train_loss", "final training loss", False, "")]


def comparisons(runs, plan):
    """Every pair of optimizers at their picks, per metric, on the seeds both finished less the
    first (it picked the settings: judged on it, a pick would be favoured by its own selection):
    paired t intervals and one sentence each, then a note on how many intervals were made.
    Selection is over; the test split may now be reported."""
    lines, made = [], 0
    picked = at_picks(runs, plan)
    chooser = plan["seeds"][0]
    for key, words, higher, unit in COMPARED:
        results = {opt: {r.seed: r.metrics[key][-1] for r in picked
                         if r.optimizer == opt and r.metrics["status"] == "complete" and key in r.metrics}
                   for opt in plan["optimizers"]}
        results = {opt: r for opt, r in results.items() if r}
        rows = stats.pairwise(results, words, higher, unit, exclude={opt: [chooser] for opt in results})
        made += stats.intervals_made(rows)
        lines += [f"- {sentence}" for *_, sentence in rows]
    if made:
        lines.append(f"- {stats.comparisons_note(made)}")
    return lines


def weight_decay_words(plan):
    return (f"weight decay {plan['weight_decay']} given to every optimizer{' unless searched' if plan.get('trials') else ''} "
            "(Adam, SGD and the other torch optimizers add it to the gradient as L2; an optimizer with decoupled "
            "decay, such as AdamW or Lion, shrinks the weights by lr x decay each step instead, so the same number "
            "is a different regulariser there)")


def write_tables(rows, plan, sweep_dir, target, verdicts=(), versus=(), budget=()):
    header = list(dict.fromkeys(key for row in rows for key in row))     # every row's columns, in order
    rows = [{key: row.get(key, "n/a") for key in header} for row in rows]
    records.atomic_write(sweep_dir / "results.csv", lambda tmp: export.write_csv(tmp, header, rows))
    export.write_latex(rows, sweep_dir / "results.tex", f"Sweep {plan['name']}: {selection_words(plan)}; "
                                                        f"{plan['epochs']} epochs; mean ± std over seeds.")
    lines = [f"# Sweep {plan['name']}", "",
             f"Validation: {split_words(plan)}. Selection: {plan['select']} of seed {plan['seeds'][0]} over "
             f"{selection_words(plan)}; {weight_decay_words(plan)}; {plan['epochs']} epochs; "
             f"values are mean ± std over seeds; epochs to reach {target_words(target)}.", "",
             "Only finished runs make a value (complete at the plan's epochs, or diverged); `runs` says how many "
             "of the pick's planned runs there are.", "",
             md_row(header), "|" + "---|" * len(header)]
    lines += [md_row(r[h] for h in header) for r in rows]
    if verdicts:
        lines += ["", f"## Verdicts: paired differences at the picks ({stats_words(plan)})", "", *verdicts]
    if budget:
        lines += ["", "## Against the baselines: what each side was given", "", *(f"- {b}" for b in budget)]
    if versus:
        lines += ["", "## Verdicts against the baselines: paired differences at the picks", "", *versus]
    records.atomic_write(sweep_dir / "results.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def md_row(cells):
    """A Markdown table row; a | or a line break in a cell (an optimizer's name) cannot split it."""
    return "| " + " | ".join(str(c).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
                             for c in cells) + " |"


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


def stats_words(plan):
    return (f"{stats.CONFIDENCE:.0%} paired t intervals over the seeds both optimizers finished, less seed "
            f"{plan['seeds'][0]}, which picked the settings; the same seed means the same initialisation and data order")


def tuning_curves(runs, plan):
    """{optimizer: stats.TuningCurve} of its first-seed trials on the selection metric, in the
    metric's own units (validation accuracy up, train loss down): Dodge et al.'s expected best after
    k trials drawn with replacement. A diverged trial is the worst result, valued as the untrained
    model (epoch 0), so that a curve starts at k = 1 however many trials diverged."""
    select, curves = plan["select"], {}
    sign = -1 if select == "val_acc" else 1          # meaning.final_metric is lower-is-better: -best val acc
    for opt in plan["optimizers"]:
        trials = first_seed(runs, plan, opt)
        if not trials:
            continue
        values = [meaning.final_metric(r.metrics, select) for r in trials]
        untrained = max(sign * r.metrics[select][0] for r in trials)
        curve = stats.tuning_curve(values, higher_is_better=False, diverged_value=untrained)
        curves[opt] = dataclasses.replace(curve, mean=[sign * v for v in curve.mean])
    return curves


def plot_tuning_curves(sides, plan, path):
    """The tuning curves (tuning_curves()) of each side, (label, its plan, its first-seed Records):
    the sweep's optimizers and the baselines'. Where a diverged trial may be the best of k, the point
    is hollow. The estimator assumes the trials are a random search; on a grid it is the expected
    best of k grid points drawn at random, and the axis says so."""
    fig, ax = plt.subplots(figsize=(7, 5))
    colours, names = plot.curve_colors([s[0] for s in sides]), plot.legend_labels([s[0] for s in sides])
    grids = set()
    for label, side_plan, trials in sides:
        curve = tuning_curves(trials, {**side_plan, "optimizers": [trials[0].optimizer]}).get(trials[0].optimizer) if trials else None
        if curve is None:
            continue
        grids.add(not side_plan.get("trials"))
        c = colours[label]
        text = plot.plain(names[label]) + (f" ({curve.diverged}/{curve.n} trials diverged)" if curve.diverged else "")
        ax.plot(curve.ks, curve.mean, color=c, label=text, linestyle="--" if plot.BASELINE in label else "-")
        for k, m, p in zip(curve.ks, curve.mean, curve.p_diverged):
            ax.plot(k, m, "o", color=c, markerfacecolor="none" if p > 0 else c)
    kind = ("search's" if grids == {False} else "grid's (a grid is not a random search)" if grids == {True}
            else "search's or grid's\n(a grid is not a random search)")
    ax.set_xlabel(f"trials k, drawn with replacement from the {kind} trials")
    ax.set_ylabel(f"expected best {'validation accuracy (%)' if plan['select'] == 'val_acc' else 'final train loss'}")
    if plan["select"] != "val_acc":
        ax.set_yscale("log")
    ax.set_title("tuning curves (Dodge et al., 2019), each side's picking-seed trials\n"
                 "hollow: a diverged trial may be the best of k", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return plot.save(fig, path)


def target_words(target):
    metric, value = target
    split = "val" if metric.startswith("val_") else "test"
    return f"{value:g}% {split} accuracy" if metric.endswith("acc") else f"{metric.replace('_', ' ')} {value:g}"


def plot_sensitivity(sides, plan, path):
    """Each side's picking-seed trials against their learning rate: sides are (label, its plan, its
    first-seed Records), the sweep's and the baselines'; the value is the selection's (the final
    train loss, or the best validation accuracy over the epochs); a diverged trial is an x on top."""
    fig, ax = plt.subplots(figsize=(7, 5))
    key = "train_loss" if plan["select"] == "train_loss" else "val_acc"
    colours, names = plot.curve_colors([s[0] for s in sides]), plot.legend_labels([s[0] for s in sides])
    for (label, side_plan, trials), style in zip(sides, plot.linestyles([s[0] for s in sides]).values()):
        line = "none" if side_plan.get("trials") else style     # searched settings differ in more than lr: no line
        points = sorted(((r.setting["lr"], r.metrics) for r in trials), key=lambda p: p[0])
        ok = [(lr, m[key][-1] if key == "train_loss" else max(m[key])) for lr, m in points
              if m["status"] != "diverged" and key in m]
        if ok:
            ax.plot(*zip(*ok), marker="o" if plot.BASELINE not in label else "s", linestyle=line,
                    color=colours[label], label=plot.plain(names[label]))
        bad = [lr for lr, m in points if m["status"] == "diverged"]
        if bad:
            ax.plot(bad, [1.0] * len(bad), "x", markersize=10, color=colours[label],
                    transform=ax.get_xaxis_transform(), clip_on=False, label=f"{plot.plain(names[label])} diverged")
    ax.set_xscale("log")
    if key == "train_loss":
        ax.set_yscale("log")   # a rate just short of diverging can end at a loss of 1e13
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final train loss" if key == "train_loss" else "best val accuracy over the epochs (%)")
    ax.set_title(f"each side's picking seed, weight decay {plan['weight_decay']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return plot.save(fig, path)


def plot_figure3(groups, path, window):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    colours, names = plot.curve_colors(groups), plot.legend_labels(groups)
    for opt, runs in groups.items():
        n = min(3 * runs[0]["iters_per_epoch"], min(len(m["iter_loss"]) for m in runs))
        if n:
            losses = np.array([m["iter_loss"][:n] for m in runs], dtype=float).mean(0)
            w = min(window, n)
            left.plot(np.arange(w, n + 1) / runs[0]["iters_per_epoch"], plot.moving_average(losses, w),
                      color=colours[opt], label=plot.plain(names[opt]))
        plot.draw_band(right, *plot.stack(runs, "train_loss"), label=plot.plain(names[opt]), color=colours[opt])
    left.set(title="first 3 epochs (per iteration, moving average)", xlabel="epoch", ylabel="training cost")
    right.set(title="all epochs", xlabel="epoch", ylabel="training cost", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    return plot.save(fig, path)



# ---------------------------------------------------------------- across workloads

UNITS = ("seconds", "epochs")     # AlgoPerf's profiles are over training seconds; epochs are our variant


def report_study(sweep_dirs, study_dir, trust_pickles=False, win_weighting="pair"):
    """One table, the performance profiles (over training seconds, AlgoPerf's definition, and over
    epochs) and the win rates over several sweeps, from their records only."""
    times, rows, names, finals = {unit: {} for unit in UNITS}, [], [], {}
    for sweep_dir in sweep_dirs:
        row, workload_times = study_row(sweep_dir, trust_pickles)
        if row["workload"] in finals:
            row["workload"] = f"{row['workload']} ({sweep_dir.name})"      # two sweeps of one workload
        finals[row["workload"]] = final_scores(sweep_dir, trust_pickles)
        for unit in UNITS:
            times[unit][row["workload"]] = workload_times[unit]
        rows.append(row)
        names += [opt for opt in workload_times["epochs"] if opt not in names]
    ratios = {unit: stats.performance_ratios(times[unit]) for unit in UNITS}
    for row in rows:
        row.update({opt: time_words(times, ratios, row["workload"], opt) for opt in names})
    records.ensure_writable(study_dir, "--study-dir")
    scores = {unit: {opt: (stats.algoperf_score(ratios[unit], opt), stats.exact_profile_area(ratios[unit], opt))
                     for opt in names} for unit in UNITS}
    wins = stats.win_rates(list(finals.values()), names, weighting=win_weighting)
    write_study_tables(rows, names, scores, wins, win_weighting, study_dir)
    plot_profiles(ratios, names, study_dir / "performance_profile.png")
    plot_win_rates(wins, names, win_weighting, study_dir / "win_rate.png")
    export.write_tidy_csv(export.tidy_rows(sweep_dirs, trust_pickles), study_dir / "study_runs.csv")
    print((study_dir / "study.md").read_text())
    matrix = [{"": a, **{b: win_words(wins, a, b) for b in names}} for a in names]
    return [("Across workloads", page.paragraphs([STUDY_WORDS]) + page.table(study_header(names), rows)
             + page.paragraphs([score_words(scores), win_rate_words(win_weighting)])
             + page.table(["", *names], matrix)
             + page.image(study_dir / "performance_profile.png", "performance profiles (AlgoPerf's, over training "
                                                                  "seconds; and over epochs, a variant)")
             + page.image(study_dir / "win_rate.png", "win rates over workloads and seeds"))]


STUDY_WORDS = ("Time to each workload's target at the optimizer's pick, median over seeds (a seed that never reaches "
               "it, or diverges, counts as never), in epochs and in training seconds (the recorded wall clock of the "
               "epochs up to it), and in brackets the ratio to the best optimizer's on that workload (targets on "
               "the validation split where one was held out).")


def time_words(times, ratios, workload, opt):
    epochs, seconds = (times[unit][workload].get(opt, np.inf) for unit in ("epochs", "seconds"))
    if not np.isfinite(epochs):
        return "not reached"
    r_epochs, r_seconds = (ratios[unit][workload].get(opt, np.inf) for unit in ("epochs", "seconds"))
    ratio = lambda r: f"x{r:.2f}" if np.isfinite(r) else "x inf"
    return f"{epochs:.3g} epochs ({ratio(r_epochs)}), {seconds:.3g} s ({ratio(r_seconds)})"


def score_words(scores):
    fmt = lambda v: "n/a" if not np.isfinite(v) else f"{v:.3f}"
    parts = [f"{unit}: " + ", ".join(f"{opt} {fmt(algoperf)} (exact area {fmt(area)})"
                                     for opt, (algoperf, area) in scores[unit].items()) for unit in UNITS]
    return (f"Performance-profile score, AlgoPerf's (the trapezoid rule on its 100-point tau grid over [1, "
            f"{stats.ALGOPERF_TAU_MAX:g}], divided by {stats.ALGOPERF_TAU_MAX - 1:g}; 1 = fastest on every workload), "
            f"with the exact area under the step profile beside it. Over training seconds (AlgoPerf's definition; "
            f"seconds of one machine, comparable only between runs made alike) {parts[0]}; over epochs (a variant: "
            f"the number of passes, whatever they cost) {parts[1]}.")


def study_row(sweep_dir, trust_pickles=False):
    """({workload, sweep, target, seeds}, {unit: {optimizer: median time to target over the pick's seeds}})."""
    plan = load_plan(sweep_dir)
    picked = at_picks(meaning.finished(collect(sweep_dir, plan, trust_pickles), plan), plan)
    if not picked:
        raise UserError(f"{sweep_dir}: no finished runs at a chosen setting yet")
    target = on_recorded_split(workload_target(sweep_dir, plan, None), [r.metrics for r in picked])
    config = records.load_json(records.sweep_run_dir(sweep_dir, picked[0].optimizer, picked[0].setting,
                                                     picked[0].seed) / records.CONFIG)
    times = {unit: {} for unit in UNITS}
    for opt in plan["optimizers"]:
        runs = [r.metrics for r in picked if r.optimizer == opt]
        for unit in UNITS:
            reached = [time_to_target(m, target, unit) for m in runs]
            times[unit][opt] = float(np.median(reached)) if reached else np.inf
    return {"workload": config["workload"]["name"], "sweep": str(sweep_dir), "target": target_words(target),
            "seeds": len(plan["seeds"])}, times


def time_to_target(metrics, target, unit):
    """Epochs, or training seconds (the epochs' recorded seconds up to it), to the target; inf if the
    run never reaches it or diverged."""
    epoch = epochs_to_target(metrics, target) if metrics["status"] != "diverged" else None
    if epoch is None:
        return np.inf
    return float(epoch) if unit == "epochs" else float(sum(metrics["seconds"][:metrics["epoch"].index(epoch) + 1]))


def final_scores(sweep_dir, trust_pickles=False):
    """{optimizer: {seed: lower-is-better final value}} at the picks, on the sweep's selection metric
    at the last epoch (not the best over epochs): -val_acc, or train_loss; inf for a diverged run."""
    plan = load_plan(sweep_dir)
    scores = {}
    for r in at_picks(meaning.finished(collect(sweep_dir, plan, trust_pickles), plan), plan):
        if r.metrics["status"] in ("complete", "diverged"):
            scores.setdefault(r.optimizer, {})[r.seed] = meaning.final_value(r.metrics, plan["select"])
    return scores


def win_rate_words(weighting):
    """What the win-rate matrix counts, said once for study.md, the page and the figure."""
    weights = ("each (workload, seed) pair weighs the same" if weighting == "pair" else
               "each workload weighs the same (its seeds' outcomes averaged first)")
    return ("Win rates: how often the row's optimizer ends better than the column's on each sweep's selection metric "
            f"at the last epoch, over the (workload, seed) pairs both finished; {weights}; ties count half, a "
            "diverged run loses, a run without a value is left out. The number is how many pairs.")


def study_header(names):
    return ["workload", "sweep", "target", "seeds", *names]


def write_study_tables(rows, names, scores, wins, weighting, study_dir):
    header = study_header(names)
    records.atomic_write(study_dir / "study.csv", lambda tmp: export.write_csv(tmp, header, rows))
    lines = ["# Study across workloads", "", STUDY_WORDS, "",
             md_row(header), "|" + "---|" * len(header),
             *(md_row(r[h] for h in header) for r in rows), "",
             score_words(scores), "", win_rate_words(weighting), "",
             md_row(["", *names]), "|" + "---|" * (len(names) + 1),
             *(md_row([a, *(win_words(wins, a, b) for b in names)]) for a in names)]
    records.atomic_write(study_dir / "study.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def win_words(wins, a, b):
    rate, n = wins.get((a, b), (None, 0))
    return "-" if a == b or not n else f"{rate:.0%} of {n}"


def plot_win_rates(wins, names, weighting, path):
    matrix = np.array([[wins.get((a, b), (np.nan, 0))[0] if a != b else np.nan for b in names] for a in names], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 1.2 + 0.9 * len(names)))
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="RdYlGn")
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i != j and wins.get((a, b), (0, 0))[1]:
                ax.text(j, i, f"{matrix[i, j]:.0%}\n(n={wins[(a, b)][1]})", ha="center", va="center", fontsize=9)
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=[plot.plain(plot.short_label(n)) for n in names],
           yticklabels=[plot.plain(plot.short_label(n)) for n in names],
           xlabel="against", ylabel="optimizer",
           title=f"win rate at the last epoch, {'per (workload, seed)' if weighting == 'pair' else 'per workload'}")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return plot.save(fig, path)


def plot_profiles(ratios, names, path):
    """rho(tau) over training seconds (AlgoPerf's) and over epochs, side by side, on AlgoPerf's tau grid."""
    taus = stats.ALGOPERF_TAUS
    colours, labels = plot.curve_colors(names), plot.legend_labels(names)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, unit in zip(axes, UNITS):
        for i, opt in enumerate(names):      # styles and widths differ: equal profiles stay visible
            ax.step(taus, stats.performance_profile(ratios[unit], opt, taus), where="post", color=colours[opt],
                    label=plot.plain(labels[opt]), linestyle=("-", "--", ":", "-.")[i % 4], linewidth=3.0 - 0.6 * (i % 4))
        ax.set(xlabel=f"tau: {unit} to target relative to the best optimizer on the workload",
               title=f"over {unit}" + (" (AlgoPerf's definition)" if unit == "seconds" else " (a variant)"), ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel(f"fraction of workloads (of {len(next(iter(ratios.values())))}) reaching the target")
    return plot.save(fig, path)
