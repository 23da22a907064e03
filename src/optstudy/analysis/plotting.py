"""Figures of saved runs: curves with seed bands, per-iteration losses, colours and labels; read
from run records only (plot.py's docstring says what each figure shows)."""
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never opens a window, never blocks
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from optstudy.core.cli import UserError  # noqa: E402
from optstudy.records import meaning, store as records  # noqa: E402
from optstudy.records.meaning import facets, short  # noqa: E402

# One colour per built-in optimizer (training/optimizers.py's REGISTRY, whose names these keys must
# be: tests/test_plot_comparison.py checks it; kept here, not imported, so that reading records never
# loads torch), the same in every figure. Any other optimizer (the user's own) takes the first of
# SPARE_COLORS that no curve of the figure uses: never a built-in's colour, so never Adam's blue.
BUILTIN_COLORS = {"adam": "tab:blue", "sgd": "tab:orange", "momentum": "tab:brown", "adagrad": "tab:green",
                  "rmsprop": "tab:red", "adadelta": "tab:purple", "adamax": "tab:pink", "adamw": "tab:cyan",
                  "paper-adam": "tab:olive", "paper-adamax": "tab:gray"}
COLORS = BUILTIN_COLORS
SPARE_COLORS = ("black", "#e6194b", "#3cb44b", "#ffb000", "#000075", "#911eb4", "#f032e6", "#469990",
                "#9a6324", "#808000", "#00bfff", "#800000")
BASELINE = " (baseline)"
KINDS = (("loss", "loss"), ("acc", "accuracy (%)"))    # rows; the accuracy row only where runs have accuracy
SPLIT_WORDS = {"train": "train", "val": "validation (held out of train)",
               "test": "test (the tutorial's 'validation')"}
SMOOTH = 50
# --x: what the epoch curves are drawn against, and its axis label.
X_AXES = {"epoch": "epoch (0 = before training)", "step": "optimizer step",
          "time": "training seconds (wall clock, summed over epochs)"}




def plot(paths, out=None, smooth=SMOOTH, log_y=False, baselines=None, x="epoch", trust_pickles=False):
    """curves.png and iterations.png of the runs under paths (with comparable baselines' picks beside
    them), into out (default: the first path if it is a folder of runs, else outputs) -> 0. Runs of
    several workloads make one pair of figures per workload (curves-<workload>.png, ...)."""
    first = Path(paths[0])
    out = Path(out or ("outputs" if records.has_metrics(first) else first))
    runs = load_runs(paths, trust_pickles)
    by_workload = defaultdict(list)
    for run in runs:
        by_workload[facets(run[1])["workload"]].append(run)
    records.ensure_writable(out, "--out")
    for workload, members in by_workload.items():
        groups = group_runs(members)
        if baselines:
            groups.update(baseline_groups(baselines, members[0][1]))
        for note in notes(groups):
            print(f"note: {note}")
        tail = "" if len(by_workload) == 1 else f"-{records.optimizer_folder(workload)}"
        written = [plot_epochs(groups, out / f"curves{tail}.png", log_y, x),
                   plot_iterations(groups, out / f"iterations{tail}.png", smooth, log_y)]
        print(f"{workload}: {len(members)} run(s), {len(groups)} curve(s): " + ", ".join(map(str, written)))
    if len(by_workload) > 1:
        print(f"{len(runs)} run(s) of {len(by_workload)} workloads: one figure each")
    return 0


def load_runs(paths, trust_pickles=False):
    dirs = records.find_runs(paths)
    if not dirs:
        raise UserError(f"no runs (folders with {records.METRICS_JSON} or {records.METRICS}) under {', '.join(map(str, paths))}")
    runs = [(d, *records.load_run(d, trust_pickles)) for d in dirs]
    for d, _, metrics in runs:
        missing = [key for key in ("epoch", "train_loss", "test_loss", "iter_loss") if key not in metrics]
        if missing:
            raise UserError(f"{d}: its record has no {', '.join(missing)}; is it a run of this repository?")
    return runs


def baseline_groups(folder, reference):
    """{label (baseline): [metrics]} of the shipped runs comparable with the reference run: of a
    baseline sweep (a folder with sweep.json) its picks only, not its every trial; what is left out
    or differs is said in one line each."""
    kept, notes = meaning.comparable(picked_runs(folder), reference)
    for note in notes:
        print(f"note: {note}")
    if not kept:
        print(f"note: no baseline in {folder} is comparable with these runs")
        return {}
    return {f"{label}{BASELINE}": runs for label, runs in group_runs(kept).items()}


def picked_runs(folder):
    """[(run_dir, config, metrics)] under folder, less the trials of each sweep there that are not
    its picks (a run outside any sweep is kept)."""
    runs = records.load_all([folder])
    sweeps = [p.parent for p in sorted(Path(folder).rglob(meaning.PLAN))]
    at_pick = set()
    for where in sweeps:
        plan = meaning.load_plan(where)
        at_pick |= {records.sweep_run_dir(where, r.optimizer, r.setting, r.seed).resolve()
                    for r in meaning.at_picks(meaning.collect(where, plan), plan)}
    inside = lambda d: any(Path(d).resolve().is_relative_to(w.resolve()) for w in sweeps)
    return [run for run in runs if not inside(run[0]) or Path(run[0]).resolve() in at_pick]


def group_runs(runs):
    """{label: [metrics, ...]}: runs that differ only in seed (and length) form one group; a label
    names the optimizer and every setting in which its group differs from another group that has
    the setting (an optimizer without betas is not labelled betas=None)."""
    by_key = defaultdict(list)
    for _, config, metrics in runs:
        f = facets(config)
        by_key[repr(sorted(f.items()))].append((f, metrics))
    all_facets = [members[0][0] for members in by_key.values()]
    varying = sorted(k for k in set().union(*all_facets) if k != "optimizer"
                     and len({repr(f[k]) for f in all_facets if f.get(k) is not None}) > 1)
    groups = {}
    for f, members in ((m[0][0], m) for m in by_key.values()):
        label = " ".join([f["optimizer"], *(f"{k}={short(f[k])}" for k in varying if f.get(k) is not None)])
        if label in groups:        # two groups told apart only by a setting one of them lacks
            label = " ".join([f["optimizer"], *(f"{k}={short(f.get(k))}" for k in varying)])
        groups[label] = [metrics for _, metrics in members]
    return groups


def linestyles(groups):
    """Groups of one optimizer share its colour; their line styles tell them apart."""
    seen, styles = defaultdict(int), {}
    for label in groups:
        name = optimizer_of(label)
        styles[label] = ("-", "--", ":", "-.")[seen[name] % 4]
        seen[name] += 1
    return styles


def optimizer_of(label):
    """The optimizer's name in a curve's label ('adam lr=0.1 (baseline)', 'adam, sweep (baseline)' -> 'adam')."""
    return str(label).split()[0].rstrip(",") if str(label).split() else str(label)


def color(label):
    """A built-in optimizer's fixed colour; for any other, the first spare one (a figure with
    several curves takes curve_colors(), which keeps them apart)."""
    return BUILTIN_COLORS.get(optimizer_of(label), SPARE_COLORS[0])


def curve_colors(labels):
    """{label: colour}, every curve its own: a built-in optimizer's first curve its fixed colour, its
    further curves (other settings, its baseline) lighter and darker shades of it; another optimizer
    a spare colour no curve of the figure has, in the order the curves come."""
    out, used, count = {}, set(), defaultdict(int)
    for label in labels:
        name = optimizer_of(label)
        if name in BUILTIN_COLORS:
            out[label] = shade(BUILTIN_COLORS[name], count[name])
            count[name] += 1
            used.add(out[label])
    for label in labels:
        if label not in out:
            free = [c for c in SPARE_COLORS if c not in used]
            out[label] = free[0] if free else shade(SPARE_COLORS[len(used) % len(SPARE_COLORS)], len(used))
            used.add(out[label])
    return out


def shade(base, i):
    """The i-th shade of a colour: itself, then alternately lighter and darker, as an RGB hex."""
    if i == 0:
        return base
    rgb = np.array(matplotlib.colors.to_rgb(base))
    amount = min(0.25 * ((i + 1) // 2), 0.75)
    rgb = rgb + (1 - rgb) * amount if i % 2 else rgb * (1 - amount)
    return matplotlib.colors.to_hex(rgb)


def short_name(name):
    """An optimizer as a figure names it: a registry name as it is, the user's own by its class
    ('/tmp/elsewhere/signum.py:Signum' -> 'Signum')."""
    return name.rpartition(":")[2] or name if ":" in name else name


def short_label(label):
    """A curve's key as its legend shows it: the optimizer's short name and its settings, numbers to
    3 significant digits ('elsewhere/s.py:Signum momentum=0.5740000000000001' -> 'Signum momentum=0.574')."""
    words = str(label).split(" ")
    out = [short_name(words[0].rstrip(",")) + ("," if words[0].endswith(",") else "")]
    for word in words[1:]:
        key, eq, value = word.partition("=")
        out.append(f"{key}={','.join(map(round3, value.split(',')))}" if eq else word)
    return " ".join(out)


def round3(text):
    try:
        return f"{float(text):.3g}"
    except ValueError:
        return text


def legend_labels(labels):
    """{label: its legend text}: short_label's, or the whole label where two short ones would be equal."""
    short = {label: short_label(label) for label in labels}
    clash = {s for s in short.values() if list(short.values()).count(s) > 1}
    return {label: label if s in clash else s for label, s in short.items()}


def stack(runs, key, x="epoch"):
    """(x, mean, min, max) over the runs' common epochs, as numpy arrays; x in epochs, steps or
    seconds (the runs' mean)."""
    n = min(len(m[key]) for m in runs)
    values = np.array([m[key][:n] for m in runs], dtype=float)
    xs = np.mean([x_values(m, x)[:n] for m in runs], axis=0)
    return xs, values.mean(0), values.min(0), values.max(0)


def x_values(metrics, x):
    """A record's epochs as --x counts them."""
    epochs = np.array(metrics["epoch"], dtype=float)
    if x == "step":
        return epochs * metrics["iters_per_epoch"]
    if x == "time":
        return np.cumsum(np.array(metrics["seconds"], dtype=float))
    return epochs


def notes(groups):
    """Say plainly what the figures leave out or cut short."""
    out = []
    lengths = {label: sorted({len(m["epoch"]) - 1 for m in runs}) for label, runs in groups.items()}
    if len({n for ns in lengths.values() for n in ns}) > 1:
        out.append("runs have different epoch counts (" + "; ".join(f"{k}: {v}" for k, v in lengths.items())
                   + "); each curve shows the epochs its runs have in common")
    for label, runs in groups.items():
        for m in runs:
            if m.get("diverged"):
                out.append(f"{label}: a run diverged at epoch {m['diverged']['epoch']}, step {m['diverged']['step']}")
            elif m.get("status") not in ("complete", None):
                out.append(f"{label}: a run is {m.get('status')} after epoch {m['epoch'][-1]}")
    return out


def plot_epochs(groups, path, log_y, x="epoch", zoom=True):
    """A panel per split and kind (loss, accuracy), every curve its own colour and short label. With
    zoom, each panel's y-axis spans where the curves are after their first quarter (where
    optimizers differ by little, the curves would overlap on the full range), and an inset shows
    the full range; a loss axis is logarithmic with log_y."""
    styles, colours, names = linestyles(groups), curve_colors(groups), legend_labels(groups)
    grid = panels(groups)
    fig, axes = plt.subplots(len(grid), len(grid[0]), figsize=(5.5 * len(grid[0]), 4 * len(grid)), sharex=True,
                             squeeze=False)
    for ax, (key, title) in zip(axes.flat, [panel for row in grid for panel in row]):
        drawn = [(label, runs) for label, runs in groups.items() if all(key in m for m in runs)]
        for label, runs in drawn:
            draw_band(ax, *stack(runs, key, x), label=band_label(names[label], runs), color=colours[label],
                      linestyle=styles[label])
            mark_divergence(ax, runs, key, colours[label], x)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if log_y and "loss" in key:
            ax.set_yscale("log")
        if zoom and drawn:
            zoom_in(ax, [stack(runs, key, x) for _, runs in drawn], log_y and "loss" in key,
                    [(colours[label], styles[label]) for label, _ in drawn], rising="acc" in key)
    for ax in axes[-1]:
        ax.set_xlabel(X_AXES[x])
        if x != "time":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=min(3, len(groups)),
               fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.06 * ((len(groups) + 2) // 3), 1, 1))
    return save(fig, path, layout=False)


def zoom_in(ax, series, log, looks, rising=False):
    """The y-range of the curves (means and bands, finite values) after their first quarter, with a
    margin; the full range in an inset where that cuts anything off, in the corner the curves leave
    free (bottom right for a rising accuracy, top right for a falling loss)."""
    tail = [np.concatenate([v[len(v) // 4:] for v in (mean, low, high)]) for _, mean, low, high in series]
    values = np.concatenate(tail)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    every = np.concatenate([np.concatenate([mean, low, high]) for _, mean, low, high in series])
    every = every[np.isfinite(every)]
    if not len(values) or not len(every):
        return
    lo, hi = float(values.min()), float(values.max())
    if log:
        lo, hi = lo / (hi / lo) ** 0.08 if hi > lo else lo * 0.99, hi * (hi / lo) ** 0.08 if hi > lo else hi * 1.01
    else:
        pad = 0.08 * (hi - lo) or 0.01 * max(abs(hi), 1e-12)
        lo, hi = lo - pad, hi + pad
    if lo <= every.min() and every.max() <= hi:
        return
    if log and hi / lo < 10:       # within less than a decade a log axis only hides its tick labels
        ax.set_yscale("linear")
    ax.set_ylim(lo, hi)
    inset = ax.inset_axes([0.6, 0.08, 0.37, 0.36] if rising else [0.6, 0.56, 0.37, 0.36])
    for (xs, mean, _, _), (colour, style) in zip(series, looks):
        inset.plot(xs, mean, color=colour, linestyle=style, linewidth=1)
    if log:
        inset.set_yscale("log")
    inset.set_title("full range", fontsize=7, pad=2)
    inset.tick_params(which="both", labelsize=6)


def panels(groups):
    """Rows of (key, title): a row per kind (loss, accuracy), a column per split some run has."""
    present = {key for runs in groups.values() for m in runs for key in m}
    splits = [s for s in records.SPLITS if f"{s}_loss" in present]
    return [[(f"{s}_{kind}", f"{SPLIT_WORDS[s]} {words}") for s in splits]
            for kind, words in KINDS if all(f"{s}_{kind}" in present for s in splits)]


def plot_iterations(groups, path, window, log_y):
    fig, ax = plt.subplots(figsize=(8, 5))
    styles, colours, names = linestyles(groups), curve_colors(groups), legend_labels(groups)
    for label, runs in groups.items():
        n = min(len(m["iter_loss"]) for m in runs)
        if n == 0:
            continue
        losses = np.array([m["iter_loss"][:n] for m in runs], dtype=float).mean(0)
        steps = np.arange(1, n + 1)
        ax.plot(steps, losses, color=colours[label], alpha=0.15, linewidth=0.5)
        w = min(window, n)
        ax.plot(steps[w - 1:], moving_average(losses, w), color=colours[label], linestyle=styles[label],
                label=band_label(names[label], runs))
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"minibatch train loss (moving average over {window} iterations)")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:        # compact baselines keep no minibatch losses
        ax.text(0.5, 0.5, "no per-iteration losses recorded", ha="center", transform=ax.transAxes)
    return save(fig, path)


def moving_average(values, window):
    """Trailing mean: point i averages iterations i-window+1..i (non-finite values included)."""
    return np.convolve(values, np.ones(window) / window, mode="valid")


def draw_band(ax, epochs, mean, low, high, label, color, linestyle="-"):
    ax.plot(epochs, mean, color=color, label=label, linestyle=linestyle, marker="." if len(epochs) < 20 else None)
    if not np.array_equal(low, high):
        ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)


def band_label(label, runs):
    """A curve's legend entry, as plain text (plain())."""
    return plain(label if len(runs) == 1 else f"{label} (mean, min-max of {len(runs)} seeds)")


def plain(text):
    """Text a user chose (an optimizer's name, a setting) as matplotlib draws it literally: every $
    escaped, so that '$x^$' is four characters, not a formula that fails to parse when the figure
    is saved, after the work. Every label and title that holds such text goes through here."""
    return str(text).replace("$", "\\$")


def mark_divergence(ax, runs, key, color, x="epoch"):
    for m in runs:
        if m.get("diverged") and m[key]:
            ax.plot(x_values(m, x)[len(m[key]) - 1], m[key][-1], marker="x", markersize=10, color=color,
                    linestyle="none")


def save(fig, path, layout=True):
    if layout:
        fig.tight_layout()
    records.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
