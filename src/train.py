"""Train one workload with one optimizer and record every epoch.

    python src/train.py --optimizer adam                       # the tutorial's reference run (cifar10-cnn)
    python src/train.py --workload mnist-logreg --optimizer adagrad
    python src/train.py --optimizer sgd --dataset synthetic --epochs 3
    python src/train.py --list-workloads / --list-optimizers

A run lives in <output-dir>/<run-name>/:
    config.json     resolved settings, command line, versions, device, git commit, start time
    metrics.json    per-epoch metrics (epoch 0 = before training) and every minibatch loss, rewritten
                    atomically after every epoch: what plot, report and sweep read
    metrics.pkl     the same dict with joblib
    checkpoint.pt   model, optimizer, schedule, metrics and every RNG state after the last complete epoch
Exit status: 0 done, 2 bad input, 3 diverged (NaN/inf loss), 130 Ctrl-C, 143 SIGTERM.
"""
import sys

from optstudy.core.cli import EXIT_OK, run_main
from optstudy.training import optimizers, workloads
from optstudy.training.flags import build_parser, parse
from optstudy.training.setup import train_runs


def main(argv=None, resume_hint=True):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.list_optimizers or args.list_workloads:
        optimizers.lookup(args.optimizer)               # run.sh checks its names this way
        extra = [args.optimizer] if optimizers.is_external(args.optimizer) else []
        print(optimizers.table(extra) if args.list_optimizers else workloads.table())
        return EXIT_OK
    return train_runs([parse(argv)], resume_hint)


if __name__ == "__main__":
    sys.exit(run_main(main))
