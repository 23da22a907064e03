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

# One colour per optimizer, the same in every figure; unknown names get a fallback by hash.
COLORS = {"adam": "tab:blue", "sgd": "tab:orange", "momentum": "tab:brown", "adagrad": "tab:green",
          "rmsprop": "tab:red", "adadelta": "tab:purple", "adamax": "tab:pink", "adamw": "tab:cyan",
          "paper-adam": "tab:olive", "paper-adamax": "tab:gray"}
KINDS = (("loss", "loss"), ("acc", "accuracy (%)"))    # rows; the accuracy row only where runs have accuracy
SPLIT_WORDS = {"train": "train", "val": "validation (held out of train)",
               "test": "test (the tutorial's 'validation')"}
SMOOTH = 50
# --x: what the epoch curves are drawn against, and its axis label.
X_AXES = {"epoch": "epoch (0 = before training)", "step": "optimizer step",
          "time": "training seconds (wall clock, summed over epochs)"}




def plot(paths, out=None, smooth=SMOOTH, log_y=False, baselines=None, x="epoch", trust_pickles=False):
    """curves.png and iterations.png of the runs under paths (with comparable baselines beside
    them), into out (default: the first path if it is a folder of runs, else outputs) -> 0."""
    first = Path(paths[0])
    out = Path(out or ("outputs" if records.has_metrics(first) else first))
    runs = load_runs(paths, trust_pickles)
    groups = group_runs(runs)
    if baselines:
        groups.update(baseline_groups(baselines, runs[0][1]))
    records.ensure_writable(out, "--out")
    for note in notes(groups):
        print(f"note: {note}")
    written = [plot_epochs(groups, out / "curves.png", log_y, x), plot_iterations(groups, out / "iterations.png", smooth, log_y)]
    print(f"{len(runs)} run(s), {len(groups)} curve(s): " + ", ".join(map(str, written)))
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
    """{label (baseline): [metrics]} of the shipped runs comparable with the reference run; what is
    left out or differs is said in one line each."""
    kept, notes = meaning.comparable(records.load_all([folder]), reference)
    for note in notes:
        print(f"note: {note}")
    if not kept:
        print(f"note: no baseline in {folder} is comparable with these runs")
        return {}
    return {f"{label} (baseline)": runs for label, runs in group_runs(kept).items()}






def group_runs(runs):
    """{label: [metrics, ...]}: runs that differ only in seed (and length) form one group; a label
    names the optimizer and every setting in which its group differs from another group."""
    by_key = defaultdict(list)
    for _, config, metrics in runs:
        f = facets(config)
        by_key[repr(sorted(f.items()))].append((f, metrics))
    all_facets = [members[0][0] for members in by_key.values()]
    varying = sorted(k for k in set().union(*all_facets) if k != "optimizer"
                     and len({repr(f.get(k)) for f in all_facets}) > 1)
    groups = {}
    for f, members in ((m[0][0], m) for m in by_key.values()):
        label = " ".join([f["optimizer"], *(f"{k}={short(f.get(k))}" for k in varying)])
        groups[label] = [metrics for _, metrics in members]
    return groups




def linestyles(groups):
    """Groups of one optimizer share its colour; their line styles tell them apart."""
    seen, styles = defaultdict(int), {}
    for label in groups:
        name = label.split()[0]
        styles[label] = ("-", "--", ":", "-.")[seen[name] % 4]
        seen[name] += 1
    return styles


def color(label):
    name = label.split()[0]
    return COLORS.get(name, f"C{sum(map(ord, name)) % 10}")


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


def plot_epochs(groups, path, log_y, x="epoch"):
    styles = linestyles(groups)
    grid = panels(groups)
    fig, axes = plt.subplots(len(grid), len(grid[0]), figsize=(5.5 * len(grid[0]), 4 * len(grid)), sharex=True,
                             squeeze=False)
    for ax, (key, title) in zip(axes.flat, [panel for row in grid for panel in row]):
        for label, runs in groups.items():
            if not all(key in m for m in runs):
                continue
            draw_band(ax, *stack(runs, key, x), label=band_label(label, runs), color=color(label),
                      linestyle=styles[label])
            mark_divergence(ax, runs, key, color(label), x)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if log_y and "loss" in key:
            ax.set_yscale("log")
    for ax in axes[-1]:
        ax.set_xlabel(X_AXES[x])
        if x != "time":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0, 0].legend()
    return save(fig, path)


def panels(groups):
    """Rows of (key, title): a row per kind (loss, accuracy), a column per split some run has."""
    present = {key for runs in groups.values() for m in runs for key in m}
    splits = [s for s in records.SPLITS if f"{s}_loss" in present]
    return [[(f"{s}_{kind}", f"{SPLIT_WORDS[s]} {words}") for s in splits]
            for kind, words in KINDS if all(f"{s}_{kind}" in present for s in splits)]


def plot_iterations(groups, path, window, log_y):
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = linestyles(groups)
    for label, runs in groups.items():
        n = min(len(m["iter_loss"]) for m in runs)
        if n == 0:
            continue
        losses = np.array([m["iter_loss"][:n] for m in runs], dtype=float).mean(0)
        steps = np.arange(1, n + 1)
        ax.plot(steps, losses, color=color(label), alpha=0.15, linewidth=0.5)
        w = min(window, n)
        ax.plot(steps[w - 1:], moving_average(losses, w), color=color(label), linestyle=styles[label],
                label=band_label(label, runs))
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"minibatch train loss (moving average over {window} iterations)")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
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


def save(fig, path):
    fig.tight_layout()
    records.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path
