"""Throughput of each workload's training pipeline against its compute ceiling (and, for the CIFAR-10
CNN, against the classic tutorial's pipeline).

    python src/benchmark.py                                   # cifar10-cnn, synthetic data of CIFAR-10's size
    python src/benchmark.py --workload mnist-logreg --dataset mnist
    python src/benchmark.py --workload all --dataset synthetic --threads 1    # one table, a process each
    python src/benchmark.py --data-dir input/data/cifar10-jpeg --precision auto --json outputs/bench.json

Measurements in one process, the same model, optimizer (Adam, or --optimizer: a registry name or
your own module:Class / file.py:Class, with --opt KEY=VALUE) and batch size:
  compute    the workload's loss, backward and step on one fixed batch of model inputs already on
             the device: the ceiling
  pipeline   loop.train_epoch exactly as train.py runs it: shuffle, gather, per-batch input
             processing (crop/flip, normalisation) on the device, loss, backward, step, metrics
  tutorial   (cifar10-cnn only) torchvision RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor +
             Normalize per PIL image, DataLoader(batch_size=128, shuffle=True, num_workers=0), fp32,
             NCHW, and the tutorial's loss.item() every step
Stack mode (--stack-sizes K ...; --trials is its old name), for workloads whose model stacks
(src/optstudy/training/stacking.py): member-steps per second of K runs trained as one stacked model
(its members) through loop.train_epoch, against the same runs one after another (a solo run's rate:
K of them take K times as long), each member with its own learning rate; once with one data order
for all (members that share a seed: one minibatch feeds them all) and once with each member's own;
each with one optimizer group per member (any optimizer) and, where the optimizer has one (Adam,
SGD), with --stacked-step; --dropout none times the models without their dropout (the bag of
words' per-member feature dropout is about 40% of its batched step).
    python src/benchmark.py --workload mnist-logreg --stack-sizes 1 4 16 64 --threads 1
    python src/benchmark.py --workload all --stack-sizes 1 4 16 64 --threads 1     # every stackable workload
Overhead mode (--overhead): each optimizer's own cost per step on each workload's model, the
forward and backward left out (fixed random gradients; only optimizer.step() is timed), against
SGD-Nesterov's (the study's baseline), and the paper's Adam and AdaMax written here against
torch.optim's in each implementation (single-tensor, foreach, fused where the build has it).
    python src/benchmark.py --overhead --workload all --threads 1
Each is timed --rounds times, interleaved, after warm-up steps; the median is reported, so a noisy
neighbour shifts all alike. In stack mode each configuration is timed right after a solo run and
each pair gives a ratio: the table has their median and range over the rounds. The projected run
is the workload's default epochs over the full dataset plus its evaluations. Peak resident memory
is read after the whole dataset is loaded and a pipeline slice and a full evaluation pass have run
(before the tutorial's PIL copy). The report names the CPU and its instruction-set capability:
bf16 is fast only with native support.
"""
import argparse
import sys
from pathlib import Path

import model as models
from optstudy.core import provenance
from optstudy.core.cli import Parser, UserError, positive_int, run_main
from optstudy.experiments.benchmark import BenchmarkConfig, measure, overhead_mode, print_report, run_all, stack_mode
from optstudy.records.store import ensure_writable, save_json
from optstudy.training import workloads

def build_parser():
    p = Parser(description="Samples/second of compute alone and of this pipeline, per workload.")
    p.add_argument("--workload", choices=[*workloads.names(), "all"], default=workloads.DEFAULT,
                   help=f"workload, or all (each in its own process, then one table) (default: {workloads.DEFAULT})")
    p.add_argument("--dataset", help="the workload's dataset or synthetic (default: synthetic of the dataset's full "
                                     "size for cifar10 workloads, else the workload's real dataset)")
    p.add_argument("--data-dir", help="image folder to load (cifar10 workloads)")
    p.add_argument("--data-root", default=str(provenance.REPO / "input" / "data"), help="data and caches (default: input/data)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--precision", choices=provenance.PRECISIONS, default="fp32", help="(default: fp32)")
    p.add_argument("--compile", choices=["off", "on", "cudagraphs"], default="off", help="torch.compile (default: off)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="(default: on)")
    p.add_argument("--batch-size", type=positive_int, help="(default: the workload's)")
    p.add_argument("--optimizer", default="adam", help="as train.py's: a registry name or your own module:Class (default: adam)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="constructor argument of the optimizer, repeatable")
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps per round and measurement (default: 20)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed steps before each measurement (default: 3)")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; the median is reported (default: 3)")
    p.add_argument("--tiny", action="store_true", help="smoke test: a few hundred synthetic samples")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--overhead", action="store_true",
                   help="overhead mode: microseconds per optimizer step of every optimizer, against SGD's")
    p.add_argument("--dropout", choices=models.DROPOUT_PLACEMENTS,
                   help="stack mode: the model's dropout placement, e.g. none (default: the workload's)")
    p.add_argument("--stack-sizes", "--trials", dest="stack_sizes", type=positive_int, nargs="+", metavar="K",
                   help="stack mode: K runs trained as one stacked model against the same runs one after "
                        "another, for each K given (e.g. --stack-sizes 1 4 16 64; --trials is its old name)")
    return p


def main(argv=None):
    args = BenchmarkConfig(**vars(build_parser().parse_args(argv)))
    if args.json:
        if Path(args.json).is_dir():
            raise UserError(f"--json {args.json}: is a folder; give the file to write")
        ensure_writable(Path(args.json).resolve().parent, "--json")   # fail before the work, not after
    if args.stack_sizes:
        return stack_mode(args)
    if args.overhead:
        return overhead_mode(args)
    if args.workload == "all":
        return run_all(args, argv or sys.argv[1:])
    report = measure(args)
    print_report(report)
    if args.json:
        save_json(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
