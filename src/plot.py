"""Overlay the learning curves of saved runs; reads only run records, never training code.

    python src/plot.py                         # every run under outputs/, figures into outputs/
    python src/plot.py outputs/quick --out outputs/quick --log-y
    python src/plot.py outputs/adam_seed0 outputs/sgd_seed0

Figures:
    curves.png      train loss, val loss, and (for classifiers) train and val accuracy against epoch,
                    optimizer step (--x step) or wall-clock training seconds (--x time: each epoch's
                    recorded seconds, summed; evaluation excluded; a batched run's are its batch's)
    iterations.png  per-iteration minibatch train loss, smoothed by a trailing moving average
                    over --smooth iterations (the raw curve is drawn faintly behind it)
Runs that differ only in seed are drawn as their mean with a min-max band; runs that differ in
anything else are separate curves, labelled by the optimizer's short name (a user optimizer's class)
and every setting in which they differ, each curve its own colour (a built-in optimizer's is fixed;
a user optimizer never takes one). A diverged run is drawn up to its last complete epoch and marked
x. Runs of several workloads make one figure each (curves-<workload>.png, iterations-<workload>.png).
With --baselines, a baseline sweep's picks are drawn, not its every trial.
"""
import sys

from optstudy.analysis.plotting import SMOOTH, X_AXES, plot
from optstudy.core.cli import Parser, positive_int, run_main
from optstudy.records.store import TRUST_PICKLES_HELP


def build_parser():
    p = Parser(description="Plot saved runs: Adam vs SGD-Nesterov and any other optimizers.")
    p.add_argument("paths", nargs="*", default=["outputs"], help="run directories or folders of runs (default: outputs)")
    p.add_argument("--out", help="folder for the PNGs (default: the first path if it is a folder of runs, else outputs)")
    p.add_argument("--smooth", type=positive_int, default=SMOOTH,
                   help=f"moving-average window of the per-iteration curve, in iterations (default: {SMOOTH})")
    p.add_argument("--log-y", action="store_true", help="log y-axis for the loss plots (as the paper's Figure 3)")
    p.add_argument("--baselines", help="a folder of shipped baseline records (baselines/...) to draw beside the runs, "
                                       "where comparable (src/baselines.py)")
    p.add_argument("--x", choices=list(X_AXES), default="epoch",
                   help="x-axis of curves.png: epoch, optimizer step or training seconds (default: epoch)")
    p.add_argument("--trust-pickles", action="store_true", help=TRUST_PICKLES_HELP)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return plot(args.paths, args.out, args.smooth, args.log_y, args.baselines, args.x, args.trust_pickles)


if __name__ == "__main__":
    sys.exit(run_main(main))
