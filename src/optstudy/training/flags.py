"""The flags of one training run (train.py's), defined once, and the RunConfig they describe:
parsed from them, resolved with the workload's defaults (resolve: the one place), and rendered back
to the command line that reproduces it (to_argv), which the records keep."""
import argparse
from dataclasses import replace

import model as models
from optstudy.core import provenance
from optstudy.core.cli import Parser, UserError, check_plain_name, non_negative_float, positive_float, positive_int, seed_int
from optstudy.core.settings import ACTION_SETTINGS, SETTINGS, RunConfig
from optstudy.data import datasets
from optstudy.training import optimizers, workloads

DROPOUT_RATE = 0.5               # every dropout of every model (the paper gives no rate; our choice)
REPO = provenance.REPO


def build_parser():
    p = Parser(description="Train one workload (default: the Adam paper's CIFAR-10 CNN) with one optimizer.")
    p.add_argument("--workload", choices=workloads.names(), default=workloads.DEFAULT,
                   help=f"dataset + model + loss + defaults (default: {workloads.DEFAULT}; see --list-workloads)")
    p.add_argument("--list-workloads", action="store_true", help="print the workloads and their defaults, then exit")
    p.add_argument("--optimizer", default="adam",
                   help=f"{', '.join(optimizers.names())}, or your own: module.path:ClassName or "
                        "path/to/file.py:ClassName (default: adam)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any constructor argument of the optimizer, a Python literal; repeatable "
                        "(e.g. --opt amsgrad=True --opt \"betas=(0.9,0.95)\": quote the parentheses for the shell)")
    p.add_argument("--list-optimizers", action="store_true", help="print the optimizers and their defaults, then exit")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the workload's; 45 for cifar10-cnn)")
    p.add_argument("--batch-size", type=positive_int, help="minibatch size (default: the workload's; 128 for most)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's, 1e-3 for adam and sgd)")
    p.add_argument("--lr-schedule", choices=workloads.LR_SCHEDULES,
                   help="constant, or inv-sqrt: lr/sqrt(epoch) as the paper's section 6.1 (default: the workload's)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 weight decay (default: the workload's, else the optimizer's: the tutorial's 5e-4 for adam, 0 for sgd)")
    p.add_argument("--betas", type=non_negative_float, nargs=2, metavar=("B1", "B2"),
                   help="Adam-family betas (default: 0.9 0.999)")
    p.add_argument("--eps", type=positive_float, help="epsilon of adaptive optimizers (default: the optimizer's)")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="paper-adam/paper-adamax only: drop the 1/(1-beta^t) corrections (paper section 6.4)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of init, dropout, data order and augmentation (default: 0)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--dataset", help="the workload's dataset, another of the same shape, or synthetic (default: the workload's)")
    p.add_argument("--data-dir", help="image folder DIR/{train,test}/<class>/*.png|jpg; overrides --dataset")
    p.add_argument("--data-root", default=str(REPO / "input" / "data"),
                   help="where downloaded archives and decoded caches live (default: input/data)")
    p.add_argument("--limit-train", type=positive_int, help="use a fixed random subset of N training samples (default: all)")
    p.add_argument("--limit-test", dest="limit_val", type=positive_int, metavar="N",
                   help="use a fixed random subset of N test samples (default: all)")
    p.add_argument("--limit-val", dest="limit_val", type=positive_int, help=argparse.SUPPRESS)   # the old name: it cut the test split
    p.add_argument("--val-split", type=non_negative_float,
                   help="hold out a validation split of the training set: N samples, or a fraction (0.1 = 10%%); "
                        "the same samples for every run and seed; 0 = none (default: none)")
    p.add_argument("--dropout", help="where dropout goes, per model (default: the model's; adam-cnn: tutorial|paper|none)")
    p.add_argument("--dropout-rate", type=float, default=DROPOUT_RATE, help=f"dropout probability (default: {DROPOUT_RATE})")
    p.add_argument("--preprocess", choices=workloads.PREPROCESS, default="standardize",
                   help="image inputs: per-channel standardisation, ZCA whitening fitted on the training split, or signed: "
                        "x/127.5 - 1, the PyTorch CIFAR-10 tutorial's mean 0.5 and std 0.5 (default: standardize)")
    p.add_argument("--zca-eps", type=positive_float, default=datasets.ZCA_EPS,
                   help=f"ZCA: added to the covariance eigenvalues, pixels in [0, 1] (default: {datasets.ZCA_EPS})")
    add_execution_flags(p)
    return p


def add_execution_flags(p):
    """How the run executes and what it records besides its epochs."""
    p.add_argument("--precision", choices=provenance.PRECISIONS, default="fp32",
                   help="bf16 = bf16 autocast; auto = bf16 only where it is fast (native bf16), else fp32 (default: fp32)")
    p.add_argument("--compile", choices=["off", "on", "cudagraphs"], default="off",
                   help="torch.compile the model; cudagraphs = mode reduce-overhead (default: off)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels_last memory format for convolutional models (default: on)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True, help="allow TF32 for fp32 matmuls on CUDA (default: on)")
    p.add_argument("--stacked-step", action="store_true",
                   help="runs trained together (a sweep's --stack-size): Adam's or SGD's update by torch's fused "
                        "kernel, once per group of runs with the same settings, instead of torch's loop over each "
                        "run's parameter group (stacking.StackedStep); other optimizers are refused")
    p.add_argument("--window-batches", type=positive_int,
                   help="also record the training accuracy and mean loss of every N minibatches, counted across "
                        "epochs (the PyTorch-tutorial posts' 1000; solo runs only)")
    p.add_argument("--eval-every-examples", type=positive_int,
                   help="also record the loss on the whole training set every M examples (D2L's 200; not counted "
                        "in the epoch's seconds; solo runs only)")
    p.add_argument("--time-steps", action="store_true",
                   help="also record the seconds spent in optimizer.step() alone, per epoch (on a GPU each step "
                        "then waits for the device)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice, one per physical core)")
    p.add_argument("--output-dir", default="outputs", help="parent folder of run records (default: outputs)")
    p.add_argument("--run-name", help="run folder name (default: <optimizer>_seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in its folder from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.add_argument("--quiet", action="store_true", help="no progress bars (they are off anyway when not on a terminal)")


def resolve(raw):
    """The run's settings with the flags left unset filled from its workload, and those it cannot
    take refused: the one place where a RunConfig is resolved."""
    workload = workloads.WORKLOADS[raw.workload]
    spec = models.MODELS[workload.model]
    val_split = raw.val_split or None           # 0 = no split = the flag not given (one identity)
    config = replace(raw, epochs=raw.epochs or workload.epochs, batch_size=raw.batch_size or workload.batch_size,
                     lr_schedule=raw.lr_schedule or workload.lr_schedule, dataset=raw.dataset or workload.dataset,
                     dropout=raw.dropout or spec.dropouts[0], val_split=val_split)
    check_fits_workload(config, workload, spec)
    if config.run_name is not None:
        check_plain_name("--run-name", config.run_name)
    return config


def check_fits_workload(config, workload, spec):
    if config.val_split and config.val_split > 1 and config.val_split != int(config.val_split):
        raise UserError(f"--val-split {config.val_split:g}: give a whole number of samples or a fraction below 1")
    if config.dropout not in spec.dropouts:
        raise UserError(f"--dropout {config.dropout}: workload {config.workload} (model {workload.model}) "
                        f"takes {', '.join(spec.dropouts)}")
    if not 0 <= config.dropout_rate < 1:
        raise UserError(f"--dropout-rate {config.dropout_rate} must be in [0, 1)")
    if config.dataset not in ("synthetic", workload.dataset, *workload.datasets):
        raise UserError(f"--dataset {config.dataset}: workload {config.workload} takes "
                        f"{', '.join((workload.dataset, *workload.datasets, 'synthetic'))}")
    if config.data_dir is not None and not workload.image_folders:
        raise UserError(f"--data-dir: workload {config.workload} does not read image folders")
    if config.preprocess != "standardize" and workload.scale != "standardize":
        raise UserError(f"--preprocess {config.preprocess}: workload {config.workload} has no standardised image inputs")


def parse(argv):
    """train.py's flags -> the resolved RunConfig they describe."""
    return resolve(RunConfig(**vars(build_parser().parse_args(list(argv)))))


def raw_config(argv):
    """train.py's flags -> their RunConfig, unresolved (what the sweep sets its runs' axes on)."""
    return RunConfig(**vars(build_parser().parse_args(list(argv))))


def to_argv(config):
    """The train.py flags that reproduce this config: every setting whose value is not the flag's
    default, in the parser's order (parse(to_argv(c)) == c for a resolved c)."""
    argv = []
    for action in build_parser()._actions:
        value = getattr(config, action.dest, None)
        if action.dest not in SETTINGS or action.dest in ACTION_SETTINGS or value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif action.nargs == 0:
            argv.append(flag)
        elif action.nargs == 2:
            argv += [flag, *map(render, value)]
        elif isinstance(action, argparse._AppendAction):
            argv += [part for item in value for part in (flag, item)]
        else:
            argv += [flag, render(value)]
    return argv


def render(value):
    """A value as its flag reads it back exactly (repr keeps every digit of a float)."""
    return repr(value) if isinstance(value, float) else str(value)
