"""Overlay the learning curves of saved runs; reads only run records, never training code.

    python src/plot.py                         # every run under outputs/, figures into outputs/
    python src/plot.py outputs/quick --out outputs/quick --log-y
    python src/plot.py outputs/adam_seed0 outputs/sgd_seed0

Figures:
    curves.png      train loss, val loss, train accuracy, val accuracy against epoch
    iterations.png  per-iteration minibatch train loss, smoothed by a trailing moving average
                    over --smooth iterations (the raw curve is drawn faintly behind it)
Runs of the same optimizer and hyperparameters but different seeds are drawn as their mean
with a min-max band. A diverged run is drawn up to its last complete epoch and marked x.
"""
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never opens a window, never blocks
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

import records  # noqa: E402
from cli import Parser, UserError, positive_int, run_main  # noqa: E402

# One colour per optimizer, the same in every figure; unknown names get a fallback by hash.
COLORS = {"adam": "tab:blue", "sgd": "tab:orange", "momentum": "tab:brown", "adagrad": "tab:green",
          "rmsprop": "tab:red", "adadelta": "tab:purple", "adamax": "tab:pink", "adamw": "tab:cyan",
          "paper-adam": "tab:olive", "paper-adamax": "tab:gray"}
PANELS = [("train_loss", "train loss"), ("val_loss", "val loss"), ("train_acc", "train accuracy (%)"),
          ("val_acc", "val accuracy (%)")]
SMOOTH = 50


def build_parser():
    p = Parser(description="Plot saved runs: Adam vs SGD-Nesterov and any other optimizers.")
    p.add_argument("paths", nargs="*", default=["outputs"], help="run directories or folders of runs (default: outputs)")
    p.add_argument("--out", help="folder for the PNGs (default: the first path if it is a folder of runs, else outputs)")
    p.add_argument("--smooth", type=positive_int, default=SMOOTH,
                   help=f"moving-average window of the per-iteration curve, in iterations (default: {SMOOTH})")
    p.add_argument("--log-y", action="store_true", help="log y-axis for the loss plots (as the paper's Figure 3)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    runs = load_runs(args.paths)
    groups = group_runs(runs)
    out = Path(args.out or (args.paths[0] if not (Path(args.paths[0]) / records.METRICS).exists() else "outputs"))
    out.mkdir(parents=True, exist_ok=True)
    for note in notes(groups):
        print(f"note: {note}")
    written = [plot_epochs(groups, out / "curves.png", args.log_y),
               plot_iterations(groups, out / "iterations.png", args.smooth, args.log_y)]
    print(f"{len(runs)} run(s), {len(groups)} curve(s): " + ", ".join(map(str, written)))
    return 0


def load_runs(paths):
    dirs = records.find_runs(paths)
    if not dirs:
        raise UserError(f"no runs (folders with {records.METRICS}) under {', '.join(paths)}")
    return [(d, *records.load_run(d)) for d in dirs]


def group_key(config):
    """Runs that differ only in seed share a key."""
    args = {k: v for k, v in config["args"].items()
            if k not in ("seed", "run_name", "output_dir", "resume", "overwrite", "quiet", "epochs", "device", "threads")}
    return config["optimizer"]["name"], repr(sorted(config["optimizer"]["hyperparameters"].items())), repr(sorted(args.items()))


def group_runs(runs):
    """{label: [metrics, ...]} with a label that names the hyperparameters only where needed."""
    by_key = defaultdict(list)
    for _, config, metrics in runs:
        by_key[group_key(config)].append((config, metrics))
    per_optimizer = defaultdict(int)
    for key in by_key:
        per_optimizer[key[0]] += 1
    groups = {}
    for key, members in by_key.items():
        config = members[0][0]
        label = key[0]
        if per_optimizer[key[0]] > 1:
            hyper = config["optimizer"]["hyperparameters"]
            label += f" lr={hyper['lr']:g} wd={hyper.get('weight_decay', 0):g}"
        groups[label] = [m for _, m in members]
    return groups


def color(label):
    name = label.split()[0]
    return COLORS.get(name, f"C{sum(map(ord, name)) % 10}")


def stack(runs, key):
    """(epochs, mean, min, max) over the runs' common epochs, as numpy arrays."""
    n = min(len(m[key]) for m in runs)
    values = np.array([m[key][:n] for m in runs], dtype=float)
    return np.array(runs[0]["epoch"][:n]), values.mean(0), values.min(0), values.max(0)


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


def plot_epochs(groups, path, log_y):
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for ax, (key, title) in zip(axes.flat, PANELS):
        for label, runs in groups.items():
            draw_band(ax, *stack(runs, key), label=band_label(label, runs), color=color(label))
            mark_divergence(ax, runs, key, color(label))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if log_y and "loss" in key:
            ax.set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("epoch (0 = before training)")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0, 0].legend()
    return save(fig, path)


def plot_iterations(groups, path, window, log_y):
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, runs in groups.items():
        n = min(len(m["iter_loss"]) for m in runs)
        if n == 0:
            continue
        losses = np.array([m["iter_loss"][:n] for m in runs], dtype=float).mean(0)
        steps = np.arange(1, n + 1)
        ax.plot(steps, losses, color=color(label), alpha=0.15, linewidth=0.5)
        w = min(window, n)
        ax.plot(steps[w - 1:], moving_average(losses, w), color=color(label), label=band_label(label, runs))
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


def draw_band(ax, epochs, mean, low, high, label, color):
    ax.plot(epochs, mean, color=color, label=label, marker="." if len(epochs) < 20 else None)
    if not np.array_equal(low, high):
        ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)


def band_label(label, runs):
    return label if len(runs) == 1 else f"{label} (mean, min-max of {len(runs)} seeds)"


def mark_divergence(ax, runs, key, color):
    for m in runs:
        if m.get("diverged") and m[key]:
            ax.plot(m["epoch"][-1], m[key][-1], marker="x", markersize=10, color=color, linestyle="none")


def save(fig, path):
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(run_main(main))
