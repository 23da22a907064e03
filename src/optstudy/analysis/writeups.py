"""The two classic write-ups this study grew from, as the paper's figures are: what each trained
(its workload, optimizers and flags), its figure, its numbers and its verdict, drawn from the saved
records only (experiments/writeups.py trains them).

- tutorial-cnn: the small CNN of the official PyTorch CIFAR-10 tutorial with the tutorial's own
  settings (batch 4, mean and std 0.5, no augmentation, 2 epochs), once with SGD (lr 0.001,
  heavy-ball momentum 0.9) and once with Adam (lr 0.001, torch's defaults), drawn as the training
  accuracy of every 1000 minibatches. The claim: "Adam was always a step ahead of SGD".
- d2l-adam: Dive into Deep Learning's Adam from scratch against the framework's Adam: linear
  regression on the airfoil self-noise data, minibatches of 10, lr 0.01, 2 epochs, the loss on the
  whole data every 200 examples. The scratch Adam is this repository's Adam from the paper
  (paper-adam, eps 1e-6 added to sqrt(v^) as D2L's). The claim: both end at a loss of about 0.243-0.245.
"""
import math
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optstudy.analysis import plotting as plot, stats
from optstudy.core.cli import UserError
from optstudy.records import meaning, store

plt = plot.plt


@dataclass(frozen=True)
class Arm:
    """One side of a write-up's comparison: a label, an optimizer and its flags."""
    key: str             # folder name
    label: str
    optimizer: str
    flags: tuple = ()


@dataclass(frozen=True)
class WriteUp:
    name: str
    title: str
    workload: str
    arms: tuple
    flags: tuple                  # train.py flags every run gets: the write-up's settings
    epochs: int
    quick: tuple = ()             # train.py flags of --quick (synthetic data, smaller)
    quick_window: int = None      # --window-batches of --quick
    claim: str = ""
    reference: dict = field(default_factory=dict)


WRITEUPS = {w.name: w for w in (
    WriteUp("tutorial-cnn", "The PyTorch CIFAR-10 tutorial's CNN: Adam vs SGD, training accuracy per 1000 minibatches",
            "cifar10-tutorial-cnn",
            (Arm("sgd-momentum", "SGD (lr 0.001, momentum 0.9)", "momentum", ("--lr", "0.001")),
             Arm("adam", "Adam (lr 0.001)", "adam", ("--lr", "0.001", "--weight-decay", "0"))),
            ("--batch-size", "4", "--epochs", "2", "--preprocess", "signed", "--window-batches", "1000"), 2,
            quick=("--dataset", "synthetic", "--limit-train", "4000", "--limit-test", "1000"), quick_window=100,
            claim="Adam was always a step ahead of SGD on training accuracy per 1000 batches; the tutorial reports "
                  "about 54% test accuracy after its 2 epochs of SGD",
            reference={"sgd_test_acc": 54.0}),
    WriteUp("d2l-adam", "D2L's Adam from scratch against torch.optim.Adam on the airfoil data",
            "airfoil-linreg",
            (Arm("scratch-adam", "Adam from scratch (paper-adam, eps 1e-6)", "paper-adam", ("--lr", "0.01", "--eps", "1e-6")),
             Arm("torch-adam", "torch.optim.Adam (eps 1e-8)", "adam", ("--lr", "0.01"))),
            ("--batch-size", "10", "--epochs", "2", "--eval-every-examples", "200", "--time-steps"), 2,
            quick=("--dataset", "synthetic",),
            claim="both Adams end at a loss of about 0.243-0.245 (D2L's printed results)",
            reference={"final_loss": (0.243, 0.245)}),
)}


def run_dir(folder, arm, seed):
    return Path(folder) / arm.key / f"seed_{seed}"


def read(writeup, folder, seeds):
    """({arm key: {seed: metrics}} of the finished runs, one run's config) (an unfinished run is
    left out, and said)."""
    runs, config = {}, None
    for arm in writeup.arms:
        for seed in seeds:
            d = run_dir(folder, arm, seed)
            state = meaning.run_state(d, writeup.epochs)
            if state == "finished":
                config, runs.setdefault(arm.key, {})[seed] = store.load_run(d)
            elif d.exists():
                print(f"note: {d} {state}: left out")
    if len(runs) < len(writeup.arms):
        raise UserError(f"{folder}: no finished runs of {', '.join(a.key for a in writeup.arms if a.key not in runs)} "
                        f"yet; run: python src/writeups.py {writeup.name}")
    return runs, config


def draw(writeup, folder, seeds, png=None):
    """The figure and the numbers file of a write-up, from its records -> 0."""
    runs, config = read(writeup, folder, seeds)
    store.ensure_writable(folder)
    path = Path(folder) / f"{writeup.name}.png"
    lines = (draw_tutorial if writeup.name == "tutorial-cnn" else draw_d2l)(writeup, runs, path)
    lines += [device_words(config)]
    store.atomic_write(Path(folder) / f"{writeup.name}.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    if png:
        store.ensure_writable(Path(png).parent, "--png")
        store.atomic_write(Path(png), lambda tmp: shutil.copyfile(path, tmp))
    print("\n".join(lines))
    print(f"{writeup.name}: {path}" + (f" and {png}" if png else ""))
    return 0


def band(ax, x, values, label, color, style=("-", 2.5)):
    """Mean over seeds, with the min-max band; style = (line style, width): two curves that agree
    to the last digit stay visible, the wide one under the dashed one."""
    values = np.asarray(values, dtype=float)
    ax.plot(x, values.mean(0), color=color, linestyle=style[0], linewidth=style[1],
            label=f"{label} (mean of {len(values)} seeds)" if len(values) > 1 else label)
    if len(values) > 1:
        ax.fill_between(x, values.min(0), values.max(0), color=color, alpha=0.2, linewidth=0)


def common(runs, key):
    """Per seed the per-window (or per-evaluation) lists of a key, cut to what every run has."""
    n = min(len(m[key]) for m in runs.values())
    return {seed: m[key][:n] for seed, m in runs.items()}, n


def draw_tutorial(writeup, runs, path):
    sgd, adam = (runs[a.key] for a in writeup.arms)
    window = next(iter(sgd.values()))["window_batches"]
    fig, ax = plt.subplots(figsize=(7, 4.3))
    for arm, color in zip(writeup.arms, ("tab:orange", "tab:blue")):
        per_seed, n = common(runs[arm.key], "window_acc")
        band(ax, window * np.arange(1, n + 1), list(per_seed.values()), arm.label, color)
    ax.set(xlabel="minibatches of 4 trained", ylabel=f"training accuracy of the last {window} minibatches (%)",
           title=writeup.title)
    ax.grid(alpha=0.3)
    ax.legend()
    plot.save(fig, path)
    return tutorial_numbers(writeup, sgd, adam, window)


def tutorial_numbers(writeup, sgd, adam, window):
    seeds = sorted(set(sgd) & set(adam))
    n = min(len(m["window_acc"]) for m in [*sgd.values(), *adam.values()])
    ahead, certain = 0, 0
    for w in range(n):
        interval = stats.paired_interval([adam[s]["window_acc"][w] for s in seeds], [sgd[s]["window_acc"][w] for s in seeds])
        ahead += interval.mean > 0
        certain += interval.kind == "t" and interval.low > 0
    test = {a.key: [m["test_acc"][-1] for m in r.values()] for a, r in zip(writeup.arms, (sgd, adam))}
    final = stats.verdict("Adam", "SGD", "test accuracy after 2 epochs",
                          stats.paired_interval([adam[s]["test_acc"][-1] for s in seeds],
                                                [sgd[s]["test_acc"][-1] for s in seeds]), True, " points")
    return [f"# {writeup.title}", "", f"The write-up's claim: {writeup.claim}.", "",
            f"Measured: {len(seeds)} seeds per optimizer (the same seed: the same initialisation and data order), "
            f"{n} windows of {window} minibatches.", "",
            "| optimizer | test accuracy after 2 epochs (mean ± std) | last window's training accuracy |", "|---|---|---|",
            *(f"| {a.label} | {mean_std(test[a.key])} | {mean_std([m['window_acc'][n - 1] for m in r.values()])} |"
              for a, r in zip(writeup.arms, (sgd, adam))), "",
            f"Verdict, per window: Adam's mean over the seeds is ahead of SGD's in {ahead} of {n} windows; its paired "
            f"{stats.CONFIDENCE:.0%} t interval lies above zero in {certain} of {n}.",
            f"Verdict, at the end: {final}",
            f"The tutorial reports about {writeup.reference['sgd_test_acc']:g}% test accuracy for SGD after 2 epochs; "
            f"measured here {mean_std(test['sgd-momentum'])}.", ""]


def draw_d2l(writeup, runs, path):
    fig, ax = plt.subplots(figsize=(7, 4.3))
    for arm, color, style in zip(writeup.arms, ("tab:green", "tab:blue"), (("-", 4.0), ("--", 1.5))):
        per_seed, n = common(runs[arm.key], "eval_train_loss")
        examples = np.array(next(iter(runs[arm.key].values()))["eval_examples"][:n], dtype=float)
        band(ax, examples / 1500, list(per_seed.values()), arm.label, color, style)
    ax.set(xlabel="epoch (the whole-data loss every 200 examples)", ylabel="loss (ŷ − y)² / 2 on the whole data",
           title=writeup.title)
    ax.grid(alpha=0.3)
    ax.legend()
    plot.save(fig, path)
    return d2l_numbers(writeup, runs)


def d2l_numbers(writeup, runs):
    (scratch_key, torch_key), rows = (a.key for a in writeup.arms), []
    for arm in writeup.arms:
        ms = list(runs[arm.key].values())
        seconds = [s for m in ms for s in m["seconds"][1:]]
        share = sum(sum(m["step_seconds"]) for m in ms) / sum(seconds)
        rows.append(f"| {arm.label} | {mean_std([m['eval_train_loss'][-1] for m in ms])} | "
                    f"{statistics.mean(seconds):.3g} | {share:.0%} |")
    seeds = sorted(set(runs[scratch_key]) & set(runs[torch_key]))
    final = lambda key: [runs[key][s]["eval_train_loss"][-1] for s in seeds]
    verdict = stats.verdict("scratch Adam", "torch Adam", "final whole-data loss",
                            stats.paired_interval(final(scratch_key), final(torch_key)), False)
    lo, hi = writeup.reference["final_loss"]
    return [f"# {writeup.title}", "", f"The write-up's claim: {writeup.claim}.", "",
            f"Measured: {len(seeds)} seeds per optimizer (the same seed: the same initialisation and data order); "
            "seconds per epoch as D2L times them (the minibatch updates, not the evaluations).", "",
            "| optimizer | final whole-data loss (mean ± std) | seconds per epoch | of which in step() |",
            "|---|---|---|---|", *rows, "",
            f"Verdict: {verdict}",
            f"D2L printed {lo:g}-{hi:g}; within that range here: "
            + ", ".join(f"{a.label} {sum(lo - 0.0005 <= m['eval_train_loss'][-1] <= hi + 0.0005 for m in runs[a.key].values())}"
                        f" of {len(runs[a.key])} seeds" for a in writeup.arms) + ".", ""]


def mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values) if len(values) > 1 else 0:.2g}"


def device_words(config):
    device, versions = config.get("device") or {}, config.get("versions") or {}
    cpu = device.get("cpu") or {}
    return (f"Device: {device.get('type')} {device.get('name')} (CPU capability {cpu.get('capability')}, flags "
            f"{', '.join(cpu.get('flags') or []) or 'none'}), {device.get('threads')} thread(s) per run; torch "
            f"{versions.get('torch')}; precision {(config.get('precision') or {}).get('used')}.")
