"""A sweep: the plan (a grid or a quasi-random search per optimizer, then the picks re-run with
more seeds), its runs trained (one at a time, in parallel, or stacked), the picks by the selection
rule (records/meaning.py) and the report. sweep.py's docstring is the user's guide.
"""
import contextlib
import datetime
import math
import os
import shlex
import signal
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import joblib
import numpy as np
import torch
import tqdm

import model as models
from optstudy.analysis import report
from optstudy.core import provenance
from optstudy.core.settings import SWEPT_SETTINGS
from optstudy.core.cli import (EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, Parser, UserError, non_negative_float,
                               non_negative_int, positive_int, seed_int)
from optstudy.experiments import space
from optstudy.records import meaning, store as records
from optstudy.training import flags, optimizers, setup, stacking, workloads

VAL_SPLIT = 0.1                  # held out of the training set by default: picks never see the test split
MAX_SETTINGS = space.MAX_SETTINGS  # what one optimizer's stage 1 may plan (a grid's rates, or --trials)
DASK_TIMEOUT = "5s"              # an unreachable scheduler is one line after this, not two tracebacks after 30 s


def build_parser():
    p = Parser(description="Learning-rate sweep and multi-seed re-runs (flags it does not know go to train.py).")
    p.add_argument("--name", required=True, help="sweep folder name under --output-dir")
    p.add_argument("--optimizers", nargs="+", default=["adam", "sgd"], help="optimizers to compare (default: adam sgd)")
    p.add_argument("--lrs", default="1e-4:1e-1:7",
                   help=f"LO:HI:N for N log-spaced rates, or a comma list (at most {MAX_SETTINGS:,} rates); with "
                        "--trials and a built-in space, its lowest and highest rate bound the search (default: 1e-4:1e-1:7)")
    p.add_argument("--trials", type=positive_int,
                   help="quasi-random search: N settings per optimizer drawn from --space instead of the --lrs grid "
                        f"(at most {MAX_SETTINGS:,})")
    p.add_argument("--space", default="auto",
                   help="with --trials: a comma list of lr,momentum,eps,weight_decay, a .json or .toml file "
                        "(src/optstudy/experiments/space.py), or auto: lr under 10 trials, +momentum under 25, +eps under 50, "
                        "then +weight_decay (default: auto)")
    p.add_argument("--sampler-seed", type=seed_int, default=0,
                   help="seed of the Sobol sampler of --trials, in [0, 2**63) (default: 0)")
    p.add_argument("--seeds", type=seed_int, nargs="+", default=[0, 1, 2],
                   help="the first picks the rate, the rest re-run the pick (default: 0 1 2)")
    p.add_argument("--epochs", type=positive_int, help="epochs of every run (default: the workload's, 45 for cifar10-cnn)")
    p.add_argument("--widen", type=non_negative_int, default=0,
                   help="while an optimizer's pick is the lowest or highest rate of its --lrs grid, try the next rate "
                        "beyond it (the grid's log step), at most N more per side; a pick still at an end is said to be "
                        "at the grid's edge (default: 0)")
    p.add_argument("--select", choices=["train_loss", "val_acc"], default="train_loss",
                   help="final train loss (the paper's choice) or best validation accuracy (default: train_loss)")
    p.add_argument("--val-split", type=non_negative_float, default=VAL_SPLIT,
                   help="validation split every run holds out of its training set: a fraction or N samples; "
                        f"0 = none (the paper's full training set; then --select val_acc is refused) (default: {VAL_SPLIT})")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="one weight decay for every optimizer, named in the results; adamw decouples it "
                        "(default: the workload's L2 if it has one, else 0)")
    p.add_argument("--target", type=float,
                   help="value of the workload's target metric for epochs-to-target (default: the workload's)")
    p.add_argument("--jobs", type=positive_int, default=1, help="runs (or batches of runs) in parallel (default: 1)")
    p.add_argument("--stack-size", "--batch-trials", dest="stack_size", default="auto",
                   help="train up to K runs of one optimizer together as one stacked model (src/optstudy/training/stacking.py), each "
                        "as it would run alone; 1 = one at a time; auto = what pays for the workload on the device, "
                        "printed (default: auto; --batch-trials is its old name)")
    p.add_argument("--backend", choices=["local", "dask"], default="local", help="joblib backend (default: local)")
    p.add_argument("--scheduler", help="Dask scheduler address for --backend dask, e.g. tcp://host:8786")
    p.add_argument("--output-dir", default="outputs", help="parent of the sweep folder (default: outputs)")
    p.add_argument("--trust-pickles", action="store_true",
                   help=records.TRUST_PICKLES_HELP)
    p.add_argument("--no-report", action="store_true", help="train and pick only; no tables or figures (report.py makes them later)")
    return p


@dataclass(frozen=True)
class SweepConfig:
    """A sweep as sweep.py's flags describe it (build_parser says what each means), parsed once
    (parse) and completed by check_args with the workload's defaults (epochs, weight_decay,
    stack_size as a number)."""
    name: str
    optimizers: list
    lrs: str
    trials: int                  # a searched setting: --trials N draws N per optimizer
    space: str
    sampler_seed: int
    seeds: list
    epochs: int
    widen: int                   # rates each end of a grid may grow by while the pick sits there
    select: str
    val_split: float
    weight_decay: float
    target: float
    jobs: int
    stack_size: object           # runs trained together as one stack: "auto" or a number as given, then an int
    backend: str
    scheduler: str
    output_dir: str
    trust_pickles: bool
    no_report: bool
    train_args: list             # the flags sweep.py does not know: passed to every run
    argv: list                   # the command line as given, which the plan records


def parse(argv):
    """sweep.py's flags -> their SweepConfig (the workload's defaults not yet filled in)."""
    argv = list(argv)
    known, train_args = build_parser().parse_known_args(argv)
    return SweepConfig(**vars(known), train_args=train_args, argv=argv)


def sweep(argv):
    """Run the sweep these sweep.py flags describe -> exit status (a stopped sweep's: 130 or 143)."""
    try:
        return run_sweep(list(argv))
    except Stopped as stop:
        return stop.args[0]


def run_sweep(argv):
    args, base = check_args(parse(argv))              # the sweep's settings with the workload's defaults
    sweep_dir = Path(args.output_dir) / args.name
    plan = make_plan(args, base)                      # validated before anything is written
    check_planned_runs(plan, args, base)
    check_stacked_step(args, base)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    plan = merge_with_saved(plan, sweep_dir)
    stage1 = [(opt, setting, args.seeds[0]) for opt, settings in meaning.planned_settings(plan).items() for setting in settings]
    run_stage(stage1, args, base, sweep_dir, plan)
    plan["best"] = widen_picks(stage1, args, base, sweep_dir, plan)
    plan["best_lr"] = {opt: setting and setting["lr"] for opt, setting in plan["best"].items()}
    records.save_json(plan, sweep_dir / "sweep.json")
    stage2 = [(opt, setting, seed) for opt, setting in plan["best"].items() if setting for seed in args.seeds[1:]]
    run_stage(stage2, args, base, sweep_dir, plan)
    if args.no_report:
        return 0
    return report.report([sweep_dir], target=args.target, trust_pickles=args.trust_pickles)


def widen_picks(stage1, args, base, sweep_dir, plan):
    """The picks on the first seed; with --widen N, while a pick is its grid's lowest or highest rate,
    the next rate beyond that end is trained and the pick made again (at most N rates per side and
    optimizer, kept in the plan's "widened"). A rate beyond that diverges ends the widening there."""
    picks = pick_best(stage1, sweep_dir, args.select, args.trust_pickles)
    plan.setdefault("widened", {})
    while True:
        new = {opt: rate for opt, setting in picks.items() if setting
               for rate in [rate_beyond(stage1, opt, setting["lr"], plan, args.widen)] if rate}
        if not new:
            return picks
        for opt, rate in new.items():
            print(f"{opt}: the pick {picks[opt]['lr']:g} is an end of its grid; --widen tries {rate:g}")
            plan["widened"].setdefault(opt, []).append(rate)
        records.save_json(plan, sweep_dir / meaning.PLAN)
        jobs = [(opt, {"lr": rate}, args.seeds[0]) for opt, rate in new.items()]
        run_stage(jobs, args, base, sweep_dir, plan)
        stage1 = [*stage1, *jobs]
        picks = pick_best(stage1, sweep_dir, args.select, args.trust_pickles)


def rate_beyond(stage1, opt, pick, plan, bound):
    """The rate one grid step past the end `pick` sits at, or None: the pick is interior, the grid
    has a single rate, or `bound` rates were already added on that side."""
    rates = sorted(setting["lr"] for o, setting, _ in stage1 if o == opt)
    if len(rates) < 2 or pick not in (rates[0], rates[-1]):
        return None
    low = pick == rates[0]
    added = [r for r in plan["widened"].get(opt, []) if (r < min(plan["lrs"])) == low]
    if len(added) >= bound:
        return None
    step = rates[1] / rates[0] if low else rates[-1] / rates[-2]
    return float(f"{pick / step if low else pick * step:.3g}")    # 3 significant digits, as parse_lrs


class Stopped(Exception):
    """The sweep stops here (args[0] = exit status); what is saved stays, the same command continues."""


def run_stage(jobs, args, base, sweep_dir, plan):
    """Train what is not finished, then insist that every planned run is: no pick or report is ever
    made from a run that failed, was interrupted or has another length than planned."""
    run_all(jobs, args, base, sweep_dir, plan["command"])
    problems = [f"{records.sweep_run_dir(sweep_dir, *job).relative_to(sweep_dir)} {state}"
                for job in jobs for state in [meaning.run_state(records.sweep_run_dir(sweep_dir, *job), args.epochs,
                                                        args.trust_pickles)] if state != "finished"]
    if problems:
        raise UserError(f"{len(problems)} planned run(s) are not finished ({'; '.join(problems[:4])}"
                        f"{'; ...' if len(problems) > 4 else ''}); no picks or report were written. "
                        f"Continue with: {plan['command']}")


def check_args(args):
    """Refuse what cannot work before anything runs -> (the SweepConfig with the workload's defaults
    filled in, the RunConfig of the flags passed through to every run: unresolved, the sweep sets
    its axes)."""
    if args.name in ("", ".", "..") or Path(args.name).name != args.name:
        raise UserError(f"--name {args.name!r}: give a plain folder name (no '/', not empty, not '.' or '..')")
    records.check_folder_target(args.output_dir, "--output-dir")      # a file there: refused before any work
    records.check_folder_target(Path(args.output_dir) / args.name, "--name")
    if args.trials and args.trials > MAX_SETTINGS:
        raise UserError(f"--trials {args.trials}: at most {MAX_SETTINGS:,} settings per optimizer are planned")
    if args.target is not None and not math.isfinite(args.target):
        raise UserError(f"--target {args.target}: give a finite number")
    owned = sorted(a.split("=")[0] for a in args.train_args if a.startswith("--") and flag_key(a) in SWEPT_SETTINGS)
    if owned:
        raise UserError(f"{', '.join(owned)}: set by the sweep itself; use its own flags (--lrs, --seeds, ...)")
    if args.widen and args.trials:
        raise UserError("--widen extends a --lrs grid; a --trials search draws its settings inside --space's bounds")
    if args.space != "auto" and not args.trials:
        raise UserError("--space needs --trials N (without it the sweep is the --lrs grid)")
    if args.backend == "dask" and not args.scheduler:
        raise UserError("--backend dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    if args.backend == "dask":
        with dask_client(args.scheduler):            # unreachable: one line now, before anything is written
            pass
    if len(set(args.seeds)) != len(args.seeds):
        raise UserError("--seeds must not repeat")
    for opt in args.optimizers:
        optimizers.lookup(opt)          # an unknown name, a missing file or a bad class: one line, now
    if len({records.optimizer_folder(o) for o in args.optimizers}) != len(args.optimizers):
        raise UserError("--optimizers: two of them would share a folder; name each once")
    base = flags.raw_config(args.train_args)            # bad pass-through flags are refused here
    workload = workloads.WORKLOADS[base.workload]
    weight_decay = args.weight_decay if args.weight_decay is not None else workload.weight_decay or 0.0
    args = replace(args, stack_size=stack_size(args.stack_size, workload, base.device),
                   epochs=args.epochs or workload.epochs, weight_decay=weight_decay)
    if args.select == "val_acc" and not args.val_split:
        raise UserError("--select val_acc with --val-split 0 would select on the test split; hold out a "
                        f"validation split (--val-split {VAL_SPLIT}) or select on train_loss")
    if args.select == "val_acc" and not workload.has_accuracy:
        raise UserError(f"--select val_acc: workload {base.workload} has no accuracy; use --select train_loss")
    return args, base


# --stack-size auto, per device type: how many runs of a stackable model train together. On a
# 2-core CPU only the logistic regressions gain (their steps are fixed cost; the MLP and the VAE
# are compute-bound: src/benchmark.py --stack-sizes measures it); on a GPU every small model does.
AUTO_BATCH = {"cpu": {"logreg": 64, "bow-logreg": 64}, "cuda": {"logreg": 64, "bow-logreg": 64, "mlp": 16, "vae": 16}}


def stack_size(value, workload, device):
    """--stack-size as a number: given, or auto for the workload's model on the device."""
    if value != "auto":
        try:
            k = int(value)
        except ValueError:
            k = 0
        if k < 1:
            raise UserError(f"--stack-size {value!r}: give a positive whole number or auto")
        if k > 1 and not models.stackable(workload.model):
            print(f"--stack-size {k}: model {workload.model} does not stack; its runs train one at a time")
            return 1
        return k
    kind = provenance.pick_device(device).type
    k = AUTO_BATCH.get(kind, {}).get(workload.model, 1)
    if k > 1:
        print(f"runs stacked {k} at a time (--stack-size auto: model {workload.model} on {kind})")
    return k


def batch_sizes(args, base):
    """{optimizer: members per stack}: an optimizer that cannot take one parameter group per member
    trains its runs one at a time, said in one line; one whose batched update --stacked-step could
    run, where it was not asked for, is said in one line too."""
    sizes = {}
    for opt in args.optimizers:
        sizes[opt] = args.stack_size
        if args.stack_size > 1:
            built = batched_optimizer(opt, args, base)
            if built is None:
                print(f"{opt} takes no parameter group per run; its runs train one at a time")
                sizes[opt] = 1
                continue
            if not base.stacked_step and stacking.stacked_step_refusal(built) is None:
                print(f"{opt}: --stacked-step would update its batched runs by torch's fused kernel, once per "
                      "setting, faster (their numbers then are those of --opt fused=True)")
    return sizes


def batched_optimizer(opt, args, base):
    """The optimizer as a stack builds it (a parameter group per member), or None where it takes no groups."""
    params = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    try:
        return optimizers.build(opt, [{"params": [p]} for p in params], base_hyperparameters(opt, args, base))
    except UserError:
        return None


def check_stacked_step(args, base):
    """--stacked-step with batched runs: every optimizer of the sweep must have the stacked update,
    refused in one line naming the one that has not, before the first run trains (not: adam trains,
    then adagrad is refused)."""
    if not base.stacked_step or args.stack_size < 2:
        return
    for opt in args.optimizers:
        built = batched_optimizer(opt, args, base)
        why = stacking.stacked_step_refusal(built) if built is not None else None
        if why:
            raise UserError(f"optimizer {opt}: {why}; nothing was trained")


def check_planned_runs(plan, args, base):
    """Every optimizer of the plan accepts the flags it will be given, before the first run trains
    (not: adam trains for an hour, then sgd refuses --eps)."""
    for opt, settings in meaning.planned_settings(plan).items():
        setup.hyperparameters(run_config(opt, settings[0], args.seeds[0], args, base))


def run_config(opt, setting, seed, args, base):
    """The resolved RunConfig of one run of the sweep: the flags passed through, with the optimizer,
    its setting, the seed and the plan's fixed settings."""
    hyper = base_hyperparameters(opt, args, base) if {"beta1", "beta2"} & set(setting) else None
    searched = space.config_fields(setting, hyper)
    weight_decay = searched.pop("weight_decay") if "weight_decay" in searched else weight_decay_value(opt, args.weight_decay)
    opts = [*searched.pop("opt", []), *(base.opt or [])] or None
    return flags.resolve(replace(base, optimizer=opt, seed=seed, epochs=args.epochs, weight_decay=weight_decay,
                                 val_split=args.val_split or None, opt=opts, **searched))


def base_hyperparameters(opt, args, base):
    """The optimizer's settings in this sweep before any searched value (its momentum, its betas)."""
    return setup.hyperparameters(run_config(opt, {}, args.seeds[0], args, base))


def weight_decay_value(optimizer, weight_decay):
    """The sweep's weight decay for every optimizer that has one; a user optimizer without a
    weight_decay argument gets none when the sweep's is 0 (a non-zero one is refused for it)."""
    spec = optimizers.lookup(optimizer)
    takes = "weight_decay" in spec.defaults or "weight_decay" in (optimizers.accepts(spec.build) or {"weight_decay"})
    return weight_decay if takes or weight_decay else None


def flag_key(flag):
    return flag.split("=")[0].lstrip("-").replace("-", "_")


def parse_lrs(text, search=False):
    """The grid's rates; a search reads only the lowest and highest, and also takes LO:HI."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":") if not (search and text.count(":") == 1) else [*text.split(":"), 2]
            if not 0 < int(n) <= MAX_SETTINGS:
                raise UserError(f"--lrs {text!r}: N is {n}; give 1 to {MAX_SETTINGS:,} rates")
            with np.errstate(all="ignore"):     # log10(0) is -inf: refused below with the reason
                values = np.logspace(np.log10(float(lo)), np.log10(float(hi)), int(n))
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--lrs {text[:60]!r}: use LO:HI:N (e.g. 1e-4:1e-1:7) or a comma list (e.g. 1e-3,1e-2)") from None
    if len(values) > MAX_SETTINGS:
        raise UserError(f"--lrs: {len(values):,} rates; give at most {MAX_SETTINGS:,}")
    if len(values) == 0 or not all(math.isfinite(v) and v > 0 for v in values):
        raise UserError(f"--lrs {text!r}: learning rates must be positive and finite")
    return sorted({float(f"{v:.3g}") for v in values})   # 3 significant digits: folder name == value used


def make_plan(args, base):
    plan = {"name": args.name, "optimizers": args.optimizers, "seeds": args.seeds, "widen": args.widen,
            "epochs": args.epochs, "select": args.select, "weight_decay": args.weight_decay,
            "val_split": args.val_split or None,
            "train_args": args.train_args, "command": shlex.join(["python", "src/sweep.py", *(args.argv or sys.argv[1:])])}
    if not args.trials:
        return {**plan, "lrs": parse_lrs(args.lrs)}
    return {**plan, **search_plan(args, base)}


def search_plan(args, base):
    """--trials: per optimizer its space ({name: [low, high, scale]}) and the settings drawn from it."""
    kind, spec = space.parse(args.space, args.trials)
    lrs = parse_lrs(args.lrs, search=True)
    if kind == "builtin" and len(lrs) < 2:
        raise UserError(f"--lrs {args.lrs!r}: a search needs a range of rates (LO:HI, e.g. 1e-4:1)")
    passed = passed_arguments(base)
    spaces, settings = {}, {}
    for opt in args.optimizers:
        dims = space.space_for(opt, kind, spec, base_hyperparameters(opt, args, base), (lrs[0], lrs[-1]))
        clash = sorted(space.arguments(dims) & passed)
        if clash:
            raise UserError(f"{', '.join(clash)} of {opt} is searched (--space) and also set by a flag passed "
                            "to every run; drop one of them")
        spaces[opt] = {name: dim.as_list() for name, dim in dims.items()}
        settings[opt] = space.sample(dims, args.trials, args.sampler_seed)
        print(f"{opt}: {args.trials} trials over " + "; ".join(f"{n} {d.low:g}..{d.high:g} {d.scale}"
                                                                for n, d in dims.items()))
    return {"trials": args.trials, "sampler_seed": args.sampler_seed, "space": spaces, "settings": settings}


def passed_arguments(base):
    """The optimizer arguments the pass-through flags set (--betas, --eps, --opt KEY=...)."""
    return {name for name in ("betas", "eps") if getattr(base, name) is not None} | set(optimizers.parse_opts(base.opt))






def merge_with_saved(plan, sweep_dir):
    """The same sweep may be re-run (to finish it); a different plan in the same folder may not. The
    saved picks stay until stage 1 picks again: a re-run that is refused or stopped loses none."""
    path = sweep_dir / meaning.PLAN
    if path.exists() or path.is_symlink():
        saved = meaning.load_plan(sweep_dir, rerun=True)      # its shape checked: one line, not a KeyError
        differing = sorted(k for k in set(saved) | set(plan) if k not in meaning.PLAN_BOOKKEEPING
                           and plan_value(saved, k) != plan_value(plan, k)
                           and not (k in meaning.PLAN_EXTENSIBLE and meaning.extends(saved, plan, k)))
        if differing:
            raise UserError(f"{sweep_dir} holds a sweep with other settings ({', '.join(differing)}); "
                            "use another --name")
        plan.update({key: saved[key] for key in ("created", "best", "best_lr", "widened") if key in saved})
    else:
        plan["created"] = now()
    plan["updated"] = now()
    records.save_json(plan, path)
    return plan


def plan_value(plan, key):
    """A plan entry as it bears on results: train_args by what they set, not how they were typed,
    and without the settings that only say how runs execute (--threads, --device)."""
    if key != "train_args":
        return plan.get(key)
    return records.identity(flags.raw_config(plan.get(key, [])).as_args())


def now():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def run_all(jobs, args, base, sweep_dir, command):
    """Run what is not finished: one after another (stopping at the first interrupted or failed run),
    or spread over processes or a Dask cluster by joblib; K runs at a time where they stack. A
    planned folder whose record does not read back is refused, never trained over."""
    threads = base.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    todo = [(opt, replace(run_config(opt, setting, seed, args, base), quiet=True, threads=threads),
             str(records.sweep_run_dir(sweep_dir, opt, setting, seed))) for opt, setting, seed in jobs]
    todo = [(opt, config, d) for opt, config, d in todo if meaning.run_state(Path(d), args.epochs, args.trust_pickles) != "finished"]
    check_records([Path(d) for _, _, d in todo], sweep_dir, args.trust_pickles, command)
    tasks = batches(todo, batch_sizes(args, base))
    try:
        if args.backend == "local" and args.jobs == 1:
            outcomes = []
            for task in tasks:
                outcomes.append(run_task(task))
                if outcomes[-1][0] in (EXIT_SIGINT, EXIT_SIGTERM) or outcomes[-1][1] is not None:
                    break                       # stop_on below stops the sweep, saying why
        else:
            outcomes = parallel(tasks, args)
    except KeyboardInterrupt:
        outcomes = [(EXIT_SIGINT, None)]
    except Stopped as stop:                     # a signal while workers trained: they are stopped (parallel())
        outcomes = [(stop.args[0], None)]
    kept = lambda: kept_words(jobs, sweep_dir, args)
    for outcome, task in zip(outcomes, tasks):
        stop_on(outcome, task[0][0], sweep_dir, command, kept)
    print(f"{len(jobs)} run(s): {len(jobs) - len(todo)} already finished, {len(todo)} trained"
          + (f" in {len(tasks)} batch(es)" if len(tasks) < len(todo) else ""))


def check_records(directories, sweep_dir, trust_pickles, command):
    """Every planned run folder still to train holds no record, or one that reads back (an interrupted
    run to resume); a record of another run, or one that is damaged, is refused in one line before
    anything trains: the sweep never trains over what it cannot read (it may be someone's data)."""
    bad = [(d, why) for d in directories for why in [records.record_problem(d, trust_pickles)] if why]
    if bad:
        first = bad[0][1].rstrip(".")
        raise UserError(f"{len(bad)} planned run folder(s) hold a record that does not read back (the first: {first}); "
                        f"the sweep trains over no such record: move {'it' if len(bad) == 1 else 'them'} out of "
                        f"{sweep_dir} (or mend it), then continue with: {command}")


def kept_words(jobs, sweep_dir, args):
    """What a stopped sweep kept, for its one line."""
    done = sum(meaning.run_state(records.sweep_run_dir(sweep_dir, *job), args.epochs, args.trust_pickles) == "finished"
               for job in jobs)
    after = ("its futures are cancelled: nothing more starts on the cluster (a run already running there finishes)"
             if args.backend == "dask" else "no run trains on")
    return f"{done} of the stage's {len(jobs)} planned run(s) finished, every other run's last complete epoch kept; {after}"


def batches(todo, sizes):
    """[(dir, config)] groups of at most sizes[optimizer] runs of one optimizer that continue from one epoch."""
    groups = {}
    for opt, config, directory in todo:
        groups.setdefault((opt, progress(Path(directory))), []).append((directory, config))
    return [members[i:i + sizes[opt]] for (opt, _), members in groups.items()
            for i in range(0, len(members), sizes[opt])]


def progress(directory):
    """The epoch a run continues from: its checkpoint's, which is what training resumes from (a run
    killed between its checkpoint and its metrics.json is one epoch ahead of its metrics), or -1: a
    run to start, or one whose record does not read back (another run's metrics: refused in training)."""
    if records.record_problem(directory) is not None:
        return -1
    epoch = records.checkpoint_epoch(directory)
    return -1 if epoch is None else epoch


SIGNALS = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}


@contextlib.contextmanager
def stopped_by_signals():
    """While workers train: SIGINT or SIGTERM to the sweep raises Stopped(130 or 143) in its main
    thread, inside joblib, which then aborts (its loky workers and their children are killed: none
    trains on, orphaned, holding a run's lock). A second signal acts at once (the previous handler)."""
    if threading.current_thread() is not threading.main_thread():     # signals can only be set there
        yield
        return
    previous = {}

    def stop(signum, frame):
        for s, handler in previous.items():
            signal.signal(s, handler)
        raise Stopped(SIGNALS[signum])
    previous.update({s: signal.signal(s, stop) for s in SIGNALS})
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def parallel(tasks, args):
    """The tasks over local processes (loky) or a Dask cluster. Stopped by a signal: the local workers
    are killed by joblib's abort; on Dask, every future of the sweep is cancelled (a task already
    running on a Dask worker cannot be interrupted and finishes its epoch's work there)."""
    calls = (joblib.delayed(worker_task)(task) for task in tasks)
    with stopped_by_signals():
        if args.backend != "dask":
            return joblib.Parallel(n_jobs=args.jobs)(calls)
        with dask_client(args.scheduler) as client, joblib.parallel_backend("dask", client=client):
            try:
                return joblib.Parallel(n_jobs=-1)(calls)
            except BaseException:
                cancel_futures(client)
                raise


def dask_client(address):
    """A client of the Dask scheduler at address, or one line saying why not, within DASK_TIMEOUT."""
    try:
        from dask.distributed import Client      # optional: only this backend needs Dask
    except ImportError:
        raise UserError("--backend dask needs dask.distributed (pip install 'dask[distributed]')") from None
    try:
        return Client(address, timeout=DASK_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise UserError(f"--scheduler {address}: cannot reach a Dask scheduler there within {DASK_TIMEOUT} "
                        f"({reason})") from None


def cancel_futures(client):
    """Cancel every future this sweep's client holds: nothing more of it starts on the cluster."""
    from dask.distributed import Future           # optional: only this backend needs Dask
    with contextlib.suppress(Exception):          # stopping: a cluster gone already has nothing to cancel
        client.cancel([Future(key, client) for key in list(client.futures)], force=True)


def stop_on(outcome, directory, sweep_dir, command, kept=lambda: "every finished epoch kept"):
    """Interrupted: stop the whole sweep, saying in one line what it kept and how to continue it.
    Failed: one line naming the run."""
    code, message = outcome
    if code in (EXIT_SIGINT, EXIT_SIGTERM):
        print(f"sweep stopped ({'SIGINT' if code == EXIT_SIGINT else 'SIGTERM'}, exit {code}): {kept()}; "
              f"continue with: {command}", file=sys.stderr)
        raise Stopped(code)
    if message is not None:
        raise UserError(f"{Path(directory).relative_to(sweep_dir)}: {message}")


def worker_task(task):
    """run_task in a worker process or thread of a parallel sweep. tqdm's console lock there is a
    thread lock: its default, a multiprocessing semaphore, would be reported leaked (lines on the
    sweep's stderr) by the resource tracker when a stopped sweep has its workers killed."""
    tqdm.tqdm.set_lock(threading.RLock())
    return run_task(task)


def run_task(task):
    """Train one run, or a batch of runs together, each resumed if it was interrupted
    -> (exit code, error or None). A worker process imports this module, and with it src/'s
    packages, from the path the sweep was started with (joblib and Dask pass it on)."""
    configs = []
    for directory, config in task:
        directory = Path(directory)
        resume = (directory / records.CHECKPOINT).exists()
        configs.append(replace(config, output_dir=str(directory.parent), run_name=directory.name, resume=resume,
                               overwrite=not resume and directory.exists()))
    try:
        return setup.train_runs(configs, resume_hint=False), None
    except UserError as err:
        return EXIT_USAGE, str(err)


def pick_best(stage1, sweep_dir, select, trust_pickles=False):
    """{optimizer: the setting with the best final metric on the first seed, None if all diverged}."""
    best = {}
    for opt, setting, seed in stage1:
        metrics = records.load_run(records.sweep_run_dir(sweep_dir, opt, setting, seed), trust_pickles)[1]
        score = meaning.final_metric(metrics, select)
        if score < best.get(opt, (float("inf"), None))[0]:
            best[opt] = (score, setting)
    picks = {opt: best.get(opt, (None, None))[1] for opt, _, _ in stage1}
    for opt, setting in picks.items():
        print(f"best for {opt}: {meaning.setting_words(setting) if setting else 'none (every setting diverged)'}")
    return picks
