"""The Adam paper's Figures 1-4 (Kingma & Ba, 2015, section 6): what each figure is (its sweeps,
panels and length), its curves read from the saved records, its drawing and its numbers file.
figures.py's docstring is the guide; experiments/figures.py runs a figure's sweeps."""
import math
import shutil
import statistics
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.ticker
import numpy as np

from optstudy.analysis import plotting as plot, stats
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
    epochs: int = None   # the paper's length of this panel where it is not the figure's (Fig. 1's IMDB: 160)


@dataclass(frozen=True)
class Figure:
    number: int
    title: str
    sweeps: tuple
    epochs: int                 # the paper's length (of every panel without its own)
    quick: dict = field(default_factory=dict)    # epochs, grid_points, and train flags of --quick
    notes: str = ""
    seeds: int = 3              # the picks re-run with seeds 1.. : curves are a mean and a band
    y_range: dict = field(default_factory=dict)  # panel -> the paper's y-axis (low, high), where it is given

    def length(self, s, cut=None):
        """Epochs of sweep s: the cut (--epochs) if given, else the paper's for its panel."""
        return cut or s.epochs or self.epochs


def fig1():
    wide = Grid(1e-4, 1.0, 9)         # half decades: every optimizer's best rate lies inside
    mnist = [Sweep(f"mnist-{o}", "MNIST", "mnist-logreg", o, wide) for o in ("adagrad", "sgd", "adam")]
    imdb = [Sweep(f"imdb-{o}", IMDB, "imdb-bow-logreg", o, wide, epochs=160)     # the paper's x-axis: 160
            for o in ("adagrad", "rmsprop", "sgd", "adam")]
    return Figure(1, "Logistic regression, lr/sqrt(epoch)", (*mnist, *imdb), 45,
                  quick=dict(epochs=5, grid_points=3, args=("--limit-train", "10000")),
                  y_range={IMDB: (0.20, 0.50)})


IMDB = "IMDB BoW, 50% feature dropout"


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
                  quick=dict(epochs=2, grid_points=1, args=("--limit-train", "5000", "--limit-test", "1000")))


BETA1 = (0.0, 0.9)
BETA2 = (0.99, 0.999, 0.9999)


def fig4():
    grid = Grid(1e-5, 1e-1, 5)        # log10 alpha in {-5, ..., -1}
    sweeps = tuple(Sweep(f"b1_{b1:g}-b2_{b2:g}-{'bc' if bc else 'nobc'}", f"{b1:g},{b2:g}", "mnist-vae",
                         "paper-adam", grid, ("--betas", f"{b1:g}", f"{b2:g}", *(() if bc else ("--no-bias-correction",))))
                   for b1 in BETA1 for b2 in BETA2 for bc in (True, False))
    return Figure(4, "VAE on MNIST: bias correction", sweeps, 100, seeds=1,     # every rate is drawn: no re-runs
                  quick=dict(epochs=3, grid_points=3, args=("--limit-train", "5000", "--limit-test", "1000")))


FIGURES = {1: fig1, 2: fig2, 3: fig3, 4: fig4}


# ---------------------------------------------------------------- reading the records

@dataclass
class Curve:
    """A sweep's outcome: the best run on the picking seed (None if every rate diverged), the whole
    grid on that seed, and the pick's runs on every seed (the picking one included)."""
    sweep: Sweep
    best_lr: float = None
    best: dict = None                   # its metrics, on the picking seed
    grid: dict = field(default_factory=dict)    # lr -> metrics, on the picking seed
    config: dict = None
    seeds: dict = field(default_factory=dict)   # seed -> metrics of the pick
    epochs: int = None

    @property
    def diverged(self):
        return sorted(lr for lr, m in self.grid.items() if m["status"] == "diverged")

    @property
    def at_edge(self):
        """The pick is the grid's lowest or highest rate: the best may lie beyond the grid, and the
        figure then compares where the grid ended as much as the optimizers."""
        return self.best is not None and len(self.grid) > 1 and self.best_lr in (min(self.grid), max(self.grid))

    @property
    def name(self):
        return NAMES.get(self.sweep.optimizer, self.sweep.optimizer)

    def label(self):
        tail = f", {len(self.diverged)}/{len(self.grid)} rates diverged" if self.diverged else ""
        if self.best is None:
            return f"{self.name}: every rate diverged ({len(self.grid)})" if self.grid else f"{self.name}: no runs yet"
        edge = ", at the grid's edge" if self.at_edge else ", the only rate tried" if len(self.grid) == 1 else ""
        seeds = f", {len(self.seeds)} seeds" if len(self.seeds) > 1 else ""
        return f"{self.name} lr={self.best_lr:.3g}{edge}{seeds}{tail}"


def read_curve(s, folder, epochs):
    """The sweep's finished runs from their records: the grid on the picking seed (the plan's first),
    the best by the lowest final train loss, and the best rate's runs on every seed."""
    curve, runs = Curve(s, epochs=epochs), []
    base = folder / s.name / s.optimizer
    for run_dir in records.find_runs([base]) if base.exists() else []:
        config, metrics = records.load_run(run_dir)
        if meaning.run_state(run_dir, epochs) != "finished":
            continue                    # unfinished or of another length: not part of this figure
        runs.append((config["args"]["seed"], config["args"]["lr"], metrics))
        curve.config = curve.config or config
    picking = min((seed for seed, _, _ in runs), default=0)
    curve.grid = {lr: m for seed, lr, m in runs if seed == picking}
    scored = [(meaning.final_metric(m, "train_loss"), lr) for lr, m in curve.grid.items()]
    scored = [(score, lr) for score, lr in scored if math.isfinite(score)]
    if scored:
        curve.best_lr = min(scored)[1]
        curve.best = curve.grid[curve.best_lr]
        curve.seeds = {seed: m for seed, lr, m in sorted(runs, key=lambda r: r[0]) if lr == curve.best_lr}
    return curve


def read_figure(figure, folder, cut=None):
    curves = [read_curve(s, folder, figure.length(s, cut)) for s in figure.sweeps]
    if not any(c.grid for c in curves):
        lengths = "/".join(sorted({str(figure.length(s, cut)) for s in figure.sweeps}))
        raise UserError(f"{folder}: no finished {lengths}-epoch runs of figure {figure.number} yet; "
                        f"run: python src/figures.py {figure.number}")
    return curves


def seed_band(c, key):
    """(epochs, mean, low, high) of the pick's `key` per epoch over its seeds (low = high = mean for
    one seed); a seed's epochs past its divergence are left out of the mean."""
    runs = list(c.seeds.values()) or [c.best]
    n = max(len(m[key]) for m in runs)
    values = np.full((len(runs), n), np.nan)
    for i, m in enumerate(runs):
        values[i, :len(m[key])] = m[key]
    values[~np.isfinite(values)] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)         # an epoch no seed reached: nan, not drawn
        return np.arange(n), np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


# ---------------------------------------------------------------- drawing

def draw(figure, folder, cut=None, png=None):
    curves = read_figure(figure, folder, cut)
    path = folder / f"figure{figure.number}.png"
    records.ensure_writable(folder)
    DRAW[figure.number](figure, curves, cut, path)
    write_summary(figure, curves, cut, folder / f"figure{figure.number}.md")
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


def length_words(figure, curves, cut):
    """'45 epochs (MNIST), 160 (IMDB ...)', and what the cut left of the paper's lengths."""
    panels = {panel: members[0].epochs for panel, members in by_panel(curves).items()}
    if len(set(panels.values())) == 1:
        text = f"{next(iter(panels.values()))} epochs"
    else:
        text = ", ".join(f"{epochs} epochs ({panel.split(',')[0]})" for panel, epochs in panels.items())
    paper = "/".join(dict.fromkeys(str(figure.length(s)) for s in unique_panels(figure)))
    cuts = cut and any(figure.length(s) != cut for s in figure.sweeps)
    return text + (f" (cut from the paper's {paper})" if cuts else "")


def suptitle(fig, figure, curves, cut):
    sizes = sorted({c.config["data"]["train_size"] for c in curves if c.config})
    seeds = sorted({len(c.seeds) for c in curves if c.seeds})
    seed_text = (f"mean and range of {'/'.join(map(str, seeds))} seeds" if seeds and max(seeds) > 1
                 else "seed 0")
    text = (f"Adam paper Fig. {figure.number}: {figure.title}. {length_words(figure, curves, cut)}, "
            f"{'/'.join(f'{n:,}' for n in sizes)} training samples, best lr per optimizer ({seed_text})")
    fig.suptitle(textwrap.fill(text, width=int(14 * fig.get_figwidth())), fontsize=10)   # wrapped to the figure


def draw_epoch_panels(figure, curves, cut, path, log_y):
    """Figs. 1 and 2: the pick's training loss per epoch, one panel per dataset, each over the
    paper's epochs; with seeds, their mean and (shaded) their range."""
    panels = by_panel(curves)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (title, members) in zip(axes[0], panels.items()):
        for c in members:
            draw_best(ax, c, "train_loss")
        ax.set(title=title, xlabel="epochs (iterations over the training set)", ylabel="training cost (NLL)")
        ax.set_xlim(0, members[0].epochs)
        if log_y:
            plain_log_ticks(ax)
        else:
            zoom_past_first_epoch(ax, members, figure.y_range.get(title))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    suptitle(fig, figure, curves, cut)
    return plot.save(fig, path)


def zoom_past_first_epoch(ax, curves, paper=None):
    """A linear axis spans the curves from epoch 2 on, as the paper's: one optimizer's high first
    epoch would otherwise flatten every other curve (its line leaves the top of the panel). The
    paper's own range where it is given and holds every curve past epoch 2."""
    values = [v for c in curves if c.best is not None for v in seed_band(c, "train_loss")[2][2:] if math.isfinite(v)]
    values += [v for c in curves if c.best is not None for v in seed_band(c, "train_loss")[3][2:] if math.isfinite(v)]
    if not values:
        return
    low, high = min(values), max(values)
    if paper and paper[0] <= low and high <= paper[1]:
        ax.set_ylim(*paper)
    else:
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))


def plain_log_ticks(ax):
    """Log y with ticks written 120, 150, 200 rather than 1.2x10^2."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def draw_best(ax, c, key, linestyle="-", label=None):
    """The pick's curve from epoch 1 (the paper's start); over several seeds their mean, and their
    range shaded."""
    color = plot.color(c.sweep.optimizer if c.sweep.optimizer != "paper-adam" else "adam")
    if c.best is None:
        ax.plot([], [], color=color, linestyle=linestyle, label=label or c.label())
        return
    epochs, mean, low, high = (a[1:] for a in seed_band(c, key))
    ax.plot(epochs, mean, color=color, linestyle=linestyle, label=label or c.label(),
            marker="." if len(epochs) < 20 else None)
    if len(c.seeds) > 1:
        ax.fill_between(epochs, low, high, color=color, alpha=0.2, linewidth=0)


def draw_fig1(figure, curves, cut, path):
    return draw_epoch_panels(figure, curves, cut, path, log_y=False)


def draw_fig2(figure, curves, cut, path):
    return draw_epoch_panels(figure, curves, cut, path, log_y=True)


def draw_fig3(figure, curves, cut, path):
    """Left: per-iteration cost over the first 3 epochs (linear, seed 0); right: every epoch (log)."""
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
    left.set(title="first 3 epochs (minibatch cost, moving average, seed 0)", xlabel="epochs", ylabel="training cost")
    right.set(title="every epoch", xlabel="epochs", ylabel="training cost")
    right.set_xlim(0, curves[0].epochs)
    plain_log_ticks(right)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    suptitle(fig, figure, curves, cut)
    return plot.save(fig, path)


def fig4_rows(epochs):
    """After a tenth of the run and at its end: the paper's 10 and 100 epochs."""
    return sorted({max(1, epochs // 10), epochs})


def draw_fig4(figure, curves, cut, path):
    """Loss against log10(lr), one panel per (beta1, beta2); with bias correction (green) and without
    (red); a diverged run is an x at the top of its panel."""
    rows, panels = fig4_rows(curves[0].epochs), by_panel(curves)
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
    suptitle(fig, figure, curves, cut)
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

def write_summary(figure, curves, cut, path):
    """figure<N>.md: per curve the best rate, final losses, diverged rates and the training time,
    the paired verdicts between the panel's optimizers over their seeds, and the time the
    paper-length figure would take at the measured speed."""
    lines = [f"# Figure {figure.number}: {figure.title}", "", f"{length_words(figure, curves, cut)} per run; "
             "with several seeds a final value is their mean ± standard deviation.", figure.notes, "",
             "| panel | optimizer | flags | rates tried | best lr | seeds | final train loss | final test loss | "
             "final test acc | diverged rates | runs | train seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [summary_row(c) for c in curves]
    lines += verdict_lines(curves)
    seconds = [s for c in curves for m in runs_of(c) for s in m["seconds"][1:]]
    if seconds:
        median = statistics.median(seconds)
        full = sum(s.grid.n * figure.length(s) + (figure.seeds - 1) * figure.length(s) for s in figure.sweeps)
        lines += ["", f"Measured: {sum(seconds) / 60:.1f} min of training (summed over runs) for "
                      f"{sum(len(runs_of(c)) for c in curves)} runs (median {median:.3g} s per epoch). At that speed "
                      f"the paper-length figure ({full:,} run-epochs: every grid at the paper's length, the picks on "
                      f"{figure.seeds} seeds, without early stops or --widen's extra rates) would take about "
                      f"{full * median / 3600:.1f} h on this device.",
                  f"Device: {device_words(curves)}."]
    records.atomic_write(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def unique_panels(figure):
    seen = {}
    for s in figure.sweeps:
        seen.setdefault(s.panel, s)
    return list(seen.values())


def runs_of(c):
    """Every finished run of the curve: its grid and its pick's other seeds."""
    return [*c.grid.values(), *(m for seed, m in c.seeds.items() if m is not c.seeds.get(min(c.seeds)))]


def verdict_lines(curves):
    """Per panel, every pair of its optimizers' picks, paired over the seeds both ran, on the
    training cost at a quarter, half and all of the run."""
    lines = []
    for panel, members in by_panel(curves).items():
        ran = [c for c in members if len(c.seeds) > 1]
        if len(ran) < 2:
            continue
        epochs = members[0].epochs
        lines += ["", f"Paired verdicts, {panel} (training cost, lower is better; the seeds include seed 0, "
                      "which also picked each rate):"]
        made = 0
        for at in sorted({max(1, epochs // 4), max(1, epochs // 2), epochs}):
            results = {c.name + curve_tag(c): {seed: loss_at(m, at) if loss_at(m, at) is not None else math.inf
                                               for seed, m in c.seeds.items()} for c in ran}
            rows = stats.pairwise(results, f"training cost at epoch {at}", higher_is_better=False)
            lines += [f"- {sentence}" for _, _, _, sentence in rows]
            made += stats.intervals_made(rows)
        lines.append(f"- {stats.comparisons_note(made)}")
    return lines


def curve_tag(c):
    return " + dropout" if c.sweep.panel == "dropout" else ""


def summary_row(c):
    m = c.best
    fmt = lambda key: f"{m[key][-1]:.4g}" if m is not None and key in m else "n/a"
    if len(c.seeds) > 1:
        values = lambda key: [run[key][-1] for run in c.seeds.values() if key in run]
        fmt = lambda key: (f"{statistics.mean(values(key)):.4g} ± {statistics.stdev(values(key)):.2g}"
                           if len(values(key)) > 1 else "n/a")
    seconds = sum(s for run in runs_of(c) for s in run["seconds"][1:])
    return (f"| {c.sweep.panel} | {c.name} | {' '.join(c.sweep.args) or '-'} | "
            f"{', '.join(f'{lr:g}' for lr in sorted(c.grid))} | {pick_words(c)} | {len(c.seeds) or '-'} | "
            f"{fmt('train_loss')} | {fmt('test_loss')} | {fmt('test_acc')} | "
            f"{', '.join(f'{lr:g}' for lr in c.diverged) or '-'} | {len(runs_of(c))} | {seconds:.0f} |")


def pick_words(c):
    if c.best is None:
        return "none"
    return f"{c.best_lr:g}" + (" (at the grid's edge)" if c.at_edge else " (the only rate tried)" if len(c.grid) == 1 else "")


def device_words(curves):
    device = next(c.config for c in curves if c.config).get("device", {})
    cpu = device.get("cpu", {})
    return (f"{device.get('type')} {device.get('name')} (CPU capability {cpu.get('capability')}), "
            f"threads per run: {device.get('threads')}")
