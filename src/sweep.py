"""The paper's protocol: a learning-rate grid (or a quasi-random search) per optimizer, then the
best setting with more seeds.

    python src/sweep.py --name paper --optimizers adam sgd adagrad rmsprop adadelta \
        --lrs 1e-5:1e-1:9 --seeds 0 1 2 3 4 5 6 7 8 9 --epochs 45 --weight-decay 0
    python src/sweep.py --name smoke --optimizers adam sgd --lrs 1e-3,1e-2,1e-1 --seeds 0 1 --epochs 2 \
        --dataset synthetic --limit-train 512
    python src/sweep.py ... --backend dask --scheduler tcp://HOST:8786
    python src/sweep.py --name tune --optimizers adam sgd --trials 16 --space lr,momentum --lrs 1e-4:1 --seeds 0 1 2

Stage 1 runs every (optimizer, learning rate) with the first seed and picks, per optimizer, the
rate with the lowest final training loss (--select train_loss, the paper's choice) or the highest
validation accuracy (--select val_acc). Stage 2 re-runs each pick with the remaining seeds.
With --trials N, stage 1 is N settings per optimizer drawn from a search space
(src/optstudy/experiments/space.py: learning rate, momentum, eps, weight decay; ranges and scales
built in or from a JSON/TOML file) by a seeded Sobol sequence instead of the grid.
Unknown flags go to every training run (e.g. --data-dir DIR --precision bf16).

Every run is an ordinary train.py run in <output-dir>/<name>/<optimizer>/<setting>/seed_<n>/, the
setting named by its values: lr_0.001, or lr_0.001__beta1_0.95__eps_1e-08 for a searched one.
Re-running the same command skips finished runs and resumes interrupted ones; a diverged run is
finished (it is recorded as diverged and never retried). The plan and the picks are in sweep.json.
The work is in src/optstudy/experiments/sweep.py.
"""
import sys

from optstudy.core.cli import run_main
from optstudy.experiments.sweep import sweep


def main(argv=None):
    return sweep(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(run_main(main))
