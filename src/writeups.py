"""The two classic write-ups this study grew from, one command each (docs/writeups.md):

    python src/writeups.py tutorial-cnn --data-dir input/data/cifar10-jpeg   # the PyTorch tutorial's CNN, Adam vs SGD
    python src/writeups.py d2l-adam                                          # D2L's Adam from scratch vs torch's
    python src/writeups.py d2l-adam --quick                                  # synthetic data, seconds
    python src/writeups.py tutorial-cnn --draw-only --png docs/writeup-tutorial-cnn.png

Each trains its optimizers with every --seed (the write-ups ran one), then draws its figure from
the saved records and writes its numbers and a paired verdict over the seeds into
<output-dir>/<name>/<name>.md. Runs live in <output-dir>/<name>/<optimizer>/seed_<n>/; re-running
keeps finished runs and resumes interrupted ones. Flags this script does not know go to every
training run (--data-dir DIR, --data-root DIR, --threads 1, ...).
"""
import sys

from optstudy.analysis.writeups import WRITEUPS
from optstudy.core.cli import Parser, positive_int, run_main, seed_int
from optstudy.experiments.writeups import make_writeup


def build_parser():
    p = Parser(description="Reproduce a classic write-up: its runs with several seeds, its figure, numbers and "
                           "verdict (flags it does not know go to every training run).")
    p.add_argument("writeup", choices=sorted(WRITEUPS), help="which write-up")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2], help="seeds of every optimizer (default: 0 1 2)")
    p.add_argument("--quick", action="store_true", help="synthetic data of the same shape, smaller: seconds on a CPU")
    p.add_argument("--output-dir", default="outputs/writeups", help="parent of the write-up's folder (default: %(default)s)")
    p.add_argument("--name", help="folder under --output-dir (default: the write-up's name, -quick with --quick)")
    p.add_argument("--jobs", type=positive_int, default=1, help="runs trained in parallel (default: 1)")
    p.add_argument("--draw-only", action="store_true", help="train nothing: draw from the records there are")
    p.add_argument("--png", help="also write the figure here (e.g. docs/writeup-d2l-adam.png)")
    return p


def main(argv=None):
    args, train_args = build_parser().parse_known_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"{sys.argv[0]}: error: --seeds must not repeat")
    return make_writeup(args.writeup, args.seeds, args.quick, args.output_dir, args.name, args.jobs, args.draw_only,
                        args.png, train_args)


if __name__ == "__main__":
    sys.exit(run_main(main))
