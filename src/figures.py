"""The Adam paper's Figures 1-4 (Kingma & Ba, 2015, section 6): one command per figure.

    python src/figures.py 1                       # Fig. 1: logistic regression, MNIST (45 epochs) and IMDB (160)
    python src/figures.py 2 --epochs 10           # Fig. 2: the MLP with dropout, cut to 10 epochs
    python src/figures.py 3 --grid-points 1       # Fig. 3: the CNN with and without dropout, one rate each
    python src/figures.py 4                       # Fig. 4: bias correction on the VAE, 60 runs of 100 epochs
    python src/figures.py 4 --quick               # any figure in minutes on a CPU (small grid, few epochs)
    python src/figures.py 1 --draw-only --png docs/figure1.png   # redraw from the saved records only

A figure is a set of learning-rate sweeps (src/sweep.py, one per panel and optimizer, each with
the optimizer's own grid; the paper tunes every optimizer's rate on a grid and shows the best)
followed by a drawing that reads only the saved run records. The best rate of each curve is the
one with the lowest final training loss on seed 0 (the paper's choice, as sweep.py --select
train_loss); while it is an end of its grid the sweep tries the next rate beyond (--widen, at most 3
per side), and a pick still at an end is marked "at the grid's edge". The pick then runs with seeds 1
and 2: each curve is the mean of 3 seeds with their range shaded. The legend names the rate and how
many rates of the grid diverged; the numbers file gives the paired verdicts of every two optimizers. Runs live in
<output-dir>/<name>/<sweep>/<optimizer>/lr_<lr>/seed_0/, the figure in <output-dir>/<name>/figure<N>.png
and its numbers in figure<N>.md. Re-running the same command skips finished runs and resumes
interrupted ones. Flags this script does not know go to every training run (--dataset synthetic,
--data-root DIR, --preprocess standardize, ...).
"""
import sys

from optstudy.analysis.figures import FIGURES
from optstudy.core.cli import Parser, non_negative_int, positive_int, run_main
from optstudy.experiments.figures import make_figure


def build_parser():
    p = Parser(description="Reproduce one of the Adam paper's Figures 1-4: its sweeps, then its drawing "
                           "(flags it does not know go to every training run).")
    p.add_argument("figure", type=int, choices=sorted(FIGURES), help="the paper's figure number")
    p.add_argument("--quick", action="store_true",
                   help="a few epochs, 3 rates per grid (1 for Fig. 3) and a training subset: minutes on a CPU")
    p.add_argument("--epochs", type=positive_int,
                   help="epochs of every run (default: each panel's paper length, Fig. 1 45 MNIST / 160 IMDB; or --quick's)")
    p.add_argument("--grid-points", type=positive_int,
                   help="rates per optimizer's grid, same ends; 1 = the grid's middle (default: 9 Fig. 1, 5 Figs. 2-4)")
    p.add_argument("--seeds", type=positive_int,
                   help="seeds of each pick, 0..N-1; the first also picks the rate (default: 3, 1 for Fig. 4 and --quick)")
    p.add_argument("--widen", type=non_negative_int,
                   help="rates each sweep may add beyond an end of its grid while its pick sits there "
                        "(sweep.py --widen; default: 3, 0 with --quick)")
    p.add_argument("--name", help="folder under --output-dir (default: fig<N>, fig<N>-quick with --quick)")
    p.add_argument("--output-dir", default="outputs/figures", help="parent of the figure's folder (default: outputs/figures)")
    p.add_argument("--jobs", type=positive_int, default=1, help="training runs in parallel (default: 1)")
    p.add_argument("--draw-only", action="store_true", help="train nothing: draw from the records there are")
    p.add_argument("--png", help="also write the figure here (e.g. docs/figure1.png)")
    return p


def main(argv=None):
    args, train_args = build_parser().parse_known_args(argv)
    return make_figure(args.figure, args.quick, args.epochs, args.grid_points, args.name, args.output_dir, args.jobs,
                       args.draw_only, args.png, train_args, args.seeds, args.widen)


if __name__ == "__main__":
    sys.exit(run_main(main))
