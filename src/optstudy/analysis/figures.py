"""The Adam paper's Figures 1-4 (Kingma & Ba, 2015, section 6): what each figure is (its sweeps,
panels and length), its curves read from the saved records, its drawing and its numbers file.
figures.py's docstring is the guide; experiments/figures.py runs a figure's sweeps."""
import math
import shutil
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.ticker
import numpy as np

from optstudy.analysis import plotting as plot
from optstudy.core.cli import UserError
from optstudy.records import meaning, store as records

plt = plot.plt
NAMES = {"adagrad": "AdaGrad", "rmsprop": "RMSProp", "sgd": "SGDNesterov", "adadelta": "AdaDelta",
         "adam": "Adam", "paper-adam": "Adam (paper's Algorithm 1)"}


@dataclass(frozen=True)
class Grid:
    """N log-spaced learning rates from lo to hi; one point is the grid's geometric middle."""
    lo: float
    hi: float
    n: int

    def spec(self, n=None):
        n = n or self.n
        if n == 1:
            return f"{math.sqrt(self.lo * self.hi):.3g}"
        return f"{self.lo:g}:{self.hi:g}:{n}"


@dataclass(frozen=True)
class Sweep:
    """One learning-rate sweep of a figure: a panel's optimizer on a workload, with extra train flags."""
    name: str            # folder under the figure's folder
    panel: str           # which panel of the figure it feeds
    workload: str
    optimizer: str
    grid: Grid
    args: tuple = ()     # train.py flags, e.g. ("--dropout", "none")


@dataclass(frozen=True)
class Figure:
    number: int
    title: str
    sweeps: tuple
    epochs: int                 # the paper's length
    quick: dict = field(default_factory=dict)    # epochs, grid_points, and train flags of --quick
    notes: str = ""


def fig1():
    wide = Grid(1e-4, 1.0, 9)         # half decades: every optimizer's best rate lies inside
    mnist = [Sweep(f"mnist-{o}", "MNIST", "mnist-logreg", o, wide) for o in ("adagrad", "sgd", "adam")]
    imdb = [Sweep(f"imdb-{o}", "IMDB BoW, 50% feature dropout", "imdb-bow-logreg", o, wide)
            for o in ("adagrad", "rmsprop", "sgd", "adam")]
    return Figure(1, "Logistic regression, lr/sqrt(epoch)", (*mnist, *imdb), 45,
                  quick=dict(epochs=5, grid_points=3, args=("--limit-train", "10000")))


def fig2():
    grids = {"adagrad": Grid(1e-3, 1e-1, 5), "rmsprop": Grid(1e-5, 1e-3, 5), "sgd": Grid(1e-3, 1e-1, 5),
             "adadelta": Grid(1e-1, 10.0, 5), "adam": Grid(1e-5, 1e-3, 5)}
    sweeps = tuple(Sweep(f"mlp-{o}", "MLP with dropout", "mnist-mlp", o, g) for o, g in grids.items())
    return Figure(2, "MNIST multilayer network, dropout", sweeps, 200,
                  quick=dict(epochs=3, grid_points=3, args=("--limit-train", "10000")),
                  notes="The right panel (deterministic cost, SFO) is left out: no maintained SFO for PyTorch.")


def fig3():
    grids = {"adagrad": Grid(1e-3, 1e-1, 5), "sgd": Grid(1e-3, 1e-1, 5), "adam": Grid(1e-4, 1e-2, 5)}
    sweeps = tuple(Sweep(f"{tag}-{o}", tag, "cifar10-cnn", o, g, ("--dropout", drop, "--preprocess", "zca"))
                   for tag, drop in (("dropout", "paper"), ("no-dropout", "none")) for o, g in grids.items())
    return Figure(3, "CIFAR-10 CNN c64-c64-c128-1000, ZCA-whitened inputs", sweeps, 45,
                  quick=dict(epochs=2, grid_points=1, args=("--limit-train", "5000", "--limit-val", "1000")))


BETA1 = (0.0, 0.9)
BETA2 = (0.99, 0.999, 0.9999)


def fig4():
    grid = Grid(1e-5, 1e-1, 5)        # log10 alpha in {-5, ..., -1}
    sweeps = tuple(Sweep(f"b1_{b1:g}-b2_{b2:g}-{'bc' if bc else 'nobc'}", f"{b1:g},{b2:g}", "mnist-vae",
                         "paper-adam", grid, ("--betas", f"{b1:g}", f"{b2:g}", *(() if bc else ("--no-bias-correction",))))
                   for b1 in BETA1 for b2 in BETA2 for bc in (True, False))
    return Figure(4, "VAE on MNIST: bias correction", sweeps, 100,
                  quick=dict(epochs=3, grid_points=3, args=("--limit-train", "5000", "--limit-val", "1000")))


FIGURES = {1: fig1, 2: fig2, 3: fig3, 4: fig4}


# ---------------------------------------------------------------- reading the records

@dataclass
class Curve:
    """A sweep's outcome: the best run (None if every rate diverged) and the whole grid."""
    sweep: Sweep
    best_lr: float = None
    best: dict = None                   # its metrics
    grid: dict = field(default_factory=dict)    # lr -> metrics
    config: dict = None

    @property
    def diverged(self):
        return sorted(lr for lr, m in self.grid.items() if m["status"] == "diverged")

    @property
    def at_edge(self):
        """The pick is the grid's lowest or highest rate: the best may lie beyond the grid, and the
        figure then compares where the grid ended as much as the optimizers."""
        return self.best is not None and len(self.grid) > 1 and self.best_lr in (min(self.grid), max(self.grid))

    def label(self):
        name = NAMES.get(self.sweep.optimizer, self.sweep.optimizer)
        tail = f", {len(self.diverged)}/{len(self.grid)} rates diverged" if self.diverged else ""
        if self.best is None:
            return f"{name}: every rate diverged ({len(self.grid)})" if self.grid else f"{name}: no runs yet"
        edge = ", at the grid's edge" if self.at_edge else ""
        return f"{name} lr={self.best_lr:.3g}{edge}{tail}"


def read_curve(s, folder, epochs):
    """The sweep's finished runs (seed 0) from their records, and the best: lowest final train loss."""
    curve = Curve(s)
    base = folder / s.name / s.optimizer
    for run_dir in records.find_runs([base]) if base.exists() else []:
        config, metrics = records.load_run(run_dir)
        if meaning.run_state(run_dir, epochs) != "finished":
            continue                    # unfinished or of another length: not part of this figure
        curve.grid[config["args"]["lr"]] = metrics
        curve.config = curve.config or config
    scored = [(meaning.final_metric(m, "train_loss"), lr) for lr, m in curve.grid.items()]
    scored = [(score, lr) for score, lr in scored if math.isfinite(score)]
    if scored:
        curve.best_lr = min(scored)[1]
        curve.best = curve.grid[curve.best_lr]
    return curve


def read_figure(figure, folder, epochs):
    curves = [read_curve(s, folder, epochs) for s in figure.sweeps]
    if not any(c.grid for c in curves):
        raise UserError(f"{folder}: no finished {epochs}-epoch runs of figure {figure.number} yet; "
                        f"run: python src/figures.py {figure.number}")
    return curves


# ---------------------------------------------------------------- drawing

def draw(figure, folder, epochs, png=None):
    curves = read_figure(figure, folder, epochs)
    path = folder / f"figure{figure.number}.png"
    records.ensure_writable(folder)
    DRAW[figure.number](figure, curves, epochs, path)
    write_summary(figure, curves, epochs, folder / f"figure{figure.number}.md")
    if png:
        records.ensure_writable(Path(png).parent, "--png")
        records.atomic_write(Path(png), lambda tmp: shutil.copyfile(path, tmp))
    print(f"figure {figure.number}: {path}" + (f" and {png}" if png else ""))
    return 0


def by_panel(curves):
    panels = {}
    for c in curves:
        panels.setdefault(c.sweep.panel, []).append(c)
    return panels


def suptitle(fig, figure, curves, epochs):
    sizes = sorted({c.config["data"]["train_size"] for c in curves if c.config})
    reduced = "" if epochs == figure.epochs else f" (cut from the paper's {figure.epochs})"
    text = (f"Adam paper Fig. {figure.number}: {figure.title}. {epochs} epochs{reduced}, "
            f"{'/'.join(f'{n:,}' for n in sizes)} training samples, best lr per optimizer (seed 0)")
    fig.suptitle(textwrap.fill(text, width=int(14 * fig.get_figwidth())), fontsize=10)   # wrapped to the figure


def draw_epoch_panels(figure, curves, epochs, path, log_y):
    """Figs. 1 and 2: the best run's training loss per epoch, one panel per dataset."""
    panels = by_panel(curves)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, members) in zip(axes[0], panels.items()):
        for c in members:
            draw_best(ax, c, "train_loss")
        ax.set(title=title, xlabel="epochs (iterations over the training set)", ylabel="training cost (NLL)")
        if log_y:
            plain_log_ticks(ax)
        else:
            zoom_past_first_epoch(ax, members)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    suptitle(fig, figure, curves, epochs)
    return plot.save(fig, path)


def zoom_past_first_epoch(ax, curves):
    """A linear axis spans the curves from epoch 2 on, as the paper's: one optimizer's high first
    epoch would otherwise flatten every other curve (its line leaves the top of the panel)."""
    values = [v for c in curves if c.best is not None for v in c.best["train_loss"][2:] if math.isfinite(v)]
    if values:
        low, high = min(values), max(values)
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))


def plain_log_ticks(ax):
    """Log y with ticks written 120, 150, 200 rather than 1.2x10^2."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def draw_best(ax, c, key, linestyle="-", label=None):
    color = plot.color(c.sweep.optimizer if c.sweep.optimizer != "paper-adam" else "adam")
    if c.best is None:
        ax.plot([], [], color=color, linestyle=linestyle, label=label or c.label())
        return
    epochs = c.best["epoch"][1:]      # the paper's curves start after the first epoch
    ax.plot(epochs, c.best[key][1:], color=color, linestyle=linestyle, label=label or c.label(),
            marker="." if len(epochs) < 20 else None)


def draw_fig1(figure, curves, epochs, path):
    return draw_epoch_panels(figure, curves, epochs, path, log_y=False)


def draw_fig2(figure, curves, epochs, path):
    return draw_epoch_panels(figure, curves, epochs, path, log_y=True)


def draw_fig3(figure, curves, epochs, path):
    """Left: per-iteration cost over the first 3 epochs (linear); right: every epoch (log)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for c in curves:
        style = "--" if c.sweep.panel == "dropout" else "-"
        label = c.label().replace(" lr=", f"{' + dropout' if style == '--' else ''} lr=", 1)
        draw_best(right, c, "train_loss", style, label)
        if c.best is not None and c.best["iter_loss"]:
            per_epoch = c.best["iters_per_epoch"]
            losses = np.array(c.best["iter_loss"][:3 * per_epoch], dtype=float)
            window = min(plot.SMOOTH, max(1, per_epoch // 4), len(losses))
            left.plot(np.arange(window, len(losses) + 1) / per_epoch, plot.moving_average(losses, window),
                      color=plot.color(c.sweep.optimizer), linestyle=style, label=label)
    left.set(title="first 3 epochs (minibatch cost, moving average)", xlabel="epochs", ylabel="training cost")
    right.set(title="every epoch", xlabel="epochs", ylabel="training cost")
    plain_log_ticks(right)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    suptitle(fig, figure, curves, epochs)
    return plot.save(fig, path)


def fig4_rows(epochs):
    """After a tenth of the run and at its end: the paper's 10 and 100 epochs."""
    return sorted({max(1, epochs // 10), epochs})


def draw_fig4(figure, curves, epochs, path):
    """Loss against log10(lr), one panel per (beta1, beta2); with bias correction (green) and without
    (red); a diverged run is an x at the top of its panel."""
    rows, panels = fig4_rows(epochs), by_panel(curves)
    fig, axes = plt.subplots(len(rows), len(panels), figsize=(3.2 * len(panels), 3.2 * len(rows)),
                             squeeze=False, sharex=True)
    for r, epoch in enumerate(rows):
        for col, (title, members) in enumerate(panels.items()):
            ax = axes[r, col]
            for c in members:
                draw_fig4_line(ax, c, epoch)
            b1, b2 = title.split(",")
            ax.set_title(f"β1={b1}, β2={b2}, after {epoch} epoch{'s' if epoch > 1 else ''}", fontsize=8)
            plain_log_ticks(ax)
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("log10(lr)")
            if col == 0:
                ax.set_ylabel("training loss (neg. ELBO)")
    axes[0, 0].legend(fontsize=7)
    suptitle(fig, figure, curves, epochs)
    return plot.save(fig, path)


def draw_fig4_line(ax, c, epoch):
    bc = "--no-bias-correction" not in c.sweep.args
    color, label = ("tab:green", "bias correction") if bc else ("tab:red", "no bias correction")
    points = sorted((math.log10(lr), loss_at(m, epoch)) for lr, m in c.grid.items())
    ok = [(x, y) for x, y in points if y is not None]
    ax.plot(*zip(*ok) if ok else ([], []), marker="o", color=color, label=label)
    bad = [x for x, y in points if y is None]
    if bad:
        ax.plot(bad, [1.0] * len(bad), "x", markersize=9, color=color, clip_on=False,
                transform=ax.get_xaxis_transform(), label=f"{label}: diverged")


def loss_at(metrics, epoch):
    """Training loss after that epoch, None where the run diverged before it."""
    if epoch >= len(metrics["train_loss"]) or not math.isfinite(metrics["train_loss"][epoch]):
        return None
    return metrics["train_loss"][epoch]


DRAW = {1: draw_fig1, 2: draw_fig2, 3: draw_fig3, 4: draw_fig4}


# ---------------------------------------------------------------- the numbers behind the figure

def write_summary(figure, curves, epochs, path):
    """figure<N>.md: per curve the best rate, final losses, diverged rates and the training time,
    with the time the paper-length figure would take at the measured speed."""
    lines = [f"# Figure {figure.number}: {figure.title}", "", f"{epochs} epochs per run (the paper: {figure.epochs}).",
             figure.notes, "",
             "| panel | optimizer | flags | rates tried | best lr | final train loss | final test loss | final test acc | "
             "diverged rates | runs | train seconds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in curves:
        lines.append(summary_row(c))
    seconds = [s for c in curves for m in c.grid.values() for s in m["seconds"][1:]]
    runs = sum(c.sweep.grid.n for c in curves)
    if seconds:
        lines += ["", f"Measured: {sum(seconds) / 60:.1f} min of training (summed over runs) for {sum(len(c.grid) for c in curves)} runs "
                      f"(median {statistics.median(seconds):.3g} s per epoch). At that speed the paper-length figure "
                      f"({runs} runs of {figure.epochs} epochs, without early stops) would take about "
                      f"{runs * figure.epochs * statistics.median(seconds) / 3600:.1f} h on this device.",
                  f"Device: {device_words(curves)}."]
    records.atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def summary_row(c):
    m = c.best
    fmt = lambda key: f"{m[key][-1]:.4g}" if m is not None and key in m else "n/a"
    seconds = sum(s for run in c.grid.values() for s in run["seconds"][1:])
    return (f"| {c.sweep.panel} | {NAMES.get(c.sweep.optimizer, c.sweep.optimizer)} | {' '.join(c.sweep.args) or '-'} | "
            f"{', '.join(f'{lr:g}' for lr in sorted(c.grid))} | {pick_words(c)} | "
            f"{fmt('train_loss')} | {fmt('test_loss')} | {fmt('test_acc')} | "
            f"{', '.join(f'{lr:g}' for lr in c.diverged) or '-'} | {len(c.grid)} | {seconds:.0f} |")


def pick_words(c):
    if c.best is None:
        return "none"
    return f"{c.best_lr:g}" + (" (at the grid's edge)" if c.at_edge else "")


def device_words(curves):
    device = next(c.config for c in curves if c.config).get("device", {})
    cpu = device.get("cpu", {})
    return (f"{device.get('type')} {device.get('name')} (CPU capability {cpu.get('capability')}), "
            f"threads per run: {device.get('threads')}")
