"""Setting a run up: its flags resolved with the workload's defaults, its folder held and checked
(resume, overwrite), its data, model and record (config.json), then the loop (loop.py)."""
import contextlib
import datetime
from pathlib import Path

import torch

import model as models
from optstudy.core import provenance
from optstudy.core.cli import EXIT_OK, UserError
from optstudy.data import datasets
from optstudy.records import store as records
from optstudy.training import optimizers, stacking, workloads
from optstudy.core.settings import MEMBER_SETTINGS
from optstudy.training.flags import DROPOUT_RATE, REPO, to_argv
from optstudy.training.probes import Probes
from optstudy.training.loop import Member, Run, Settings, autocast, command_line, quiet, train


def new_member(config):
    """A run to train from its resolved RunConfig (a member of the stack that trains it, alone or
    with others): its optimizer's settings and its folder."""
    workload = workloads.WORKLOADS[config.workload]
    hyper = optimizers.resolve(config.optimizer, optimizer_overrides(config), optimizers.parse_opts(config.opt),
                               workload_defaults(config, workload))
    run_dir = Path(config.output_dir) / (config.run_name or f"{records.optimizer_folder(config.optimizer)}_seed{config.seed}")
    return Member(config, hyper, run_dir)


def train_runs(configs, resume_hint=True):
    """Train runs given by their resolved RunConfigs: one is an ordinary run; several of a workload
    whose model stacks train together as one model (stacking.py), each exactly as it would alone."""
    runs = [new_member(config) for config in configs]
    args = check_batch(runs)
    workload = workloads.WORKLOADS[args.workload]
    device = provenance.pick_device(args.device)
    settings = Settings(args.batch_size, provenance.resolve_precision(args.precision, device), quiet(args),
                        workload.eval_batch_size)
    for t in runs:
        if t.args.resume:
            records.check_resumable(t.run_dir)        # a refusal creates nothing, not even the folder
    with contextlib.ExitStack() as held:
        for t in runs:
            held.enter_context(records.held(t.run_dir))   # one process per run folder
            t.checkpoint = resumable_checkpoint(t.run_dir, t.args)
        runs = still_to_train(runs)
        if not runs:
            return EXIT_OK
        data, inputs = load_data(workload, device, args.dataset, args.data_dir, args.data_root, args.limit_train,
                                 args.limit_val, args.preprocess, args.channels_last, args.zca_eps, args.val_split)
        if args.batch_size > len(data.train_y):
            raise UserError(f"--batch-size {args.batch_size} is larger than the {len(data.train_y)} training samples")
        configure_backends(args.threads, args.tf32, device)
        models_ = [build_member_model(t, workload, data, device, len(runs) > 1) for t in runs]
        model = models_[0] if len(runs) == 1 else stacking.Stack(models_, [t.noise for t in runs],
                                                                 stacked_grads=args.stacked_step)
        run = Run(model, workload, data, inputs, settings, runs, models_, resume_hint)
        check_model_accepts(run)
        for t in runs:
            t.config = make_config(t.args, workload, t.hyper, settings, device, data, models_[0], t.run_dir,
                                   t.checkpoint, batch_size=len(runs))
        return train(run, device)


def hyperparameters(config):
    """Every constructor argument the optimizer of a run with this config gets (the sweep checks
    its plan with the exact settings of each run)."""
    t = new_member(config)
    return {**optimizers.lookup(config.optimizer).fixed, **t.hyper}


def batch_key(args):
    """The settings the members of one batch must share: everything but each member's own."""
    return {k: v for k, v in records.identity(args.as_args()).items() if k not in MEMBER_SETTINGS}


def check_batch(runs):
    """Runs trained together share every setting but their own (core/settings.py: MEMBER_SETTINGS) and a stackable model."""
    first = runs[0].args
    if len(runs) > 1:
        differing = sorted({k for t in runs[1:] for k, v in batch_key(t.args).items() if batch_key(first).get(k) != v})
        if differing:
            raise UserError(f"runs trained together must share {', '.join(differing)}")
        if not models.stackable(workloads.WORKLOADS[first.workload].model):
            raise UserError(f"workload {first.workload} has no stacked model; train its runs one at a time")
        if any(Probes.wanted(t.args) for t in runs):
            raise UserError("--window-batches, --eval-every-examples and --time-steps measure solo runs; train "
                            "these runs one at a time (--stack-size 1)")
        if len({t.run_dir.resolve() for t in runs}) != len(runs):
            raise UserError("two runs of the batch share a run folder")
    return first


def still_to_train(runs):
    """The runs not yet at their last epoch, all from one epoch (a batch moves in step)."""
    todo = [t for t in runs if t.checkpoint is None or t.checkpoint["epoch"] < t.args.epochs]
    for t in runs:
        if t not in todo:
            already_done(t.run_dir, t.checkpoint["metrics"])
    if len({t.checkpoint["epoch"] if t.checkpoint else -1 for t in todo}) > 1:
        raise UserError("runs trained together must continue from the same epoch; train them one at a time")
    return todo


def build_member_model(t, workload, data, device, stacked):
    """The member's model, initialised from its seed as a solo run's (then restored, on resume); a
    batched member gets its own noise stream, where the solo run's global stream would now be."""
    torch.manual_seed(t.args.seed)
    model = build_model(workload, data, device, t.args.dropout, t.args.dropout_rate, t.args.channels_last)
    if t.checkpoint is not None:
        model.load_state_dict(t.checkpoint["model"])
    if stacked:
        cuda = device.type == "cuda"
        t.noise = torch.Generator(device=device)
        saved = t.checkpoint["rng"]["cuda" if cuda else "torch"] if t.checkpoint is not None else None
        t.noise.set_state(saved if saved is not None else torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state())
    return model


def already_done(run_dir, metrics):
    """A run that has all its epochs: nothing to train. Only a run stopped between its last
    checkpoint and the word 'complete' gets that word."""
    if metrics["status"] not in ("complete", "diverged"):
        metrics["status"] = "complete"
        records.save_metrics(metrics, run_dir)
    print(f"{run_dir} already has its {metrics['epoch'][-1]} epochs: nothing to do")
    return EXIT_OK


def resumable_checkpoint(run_dir, args):
    """The checkpoint that --resume continues (None for a new run); refuses what cannot be resumed."""
    if records.prepare_run_dir(run_dir, args.resume, args.overwrite) != "resume":
        return None
    config = records.load_config(run_dir / records.CONFIG)
    checkpoint = records.load_checkpoint(run_dir, args.as_args())
    check_same_run(run_dir, config, checkpoint)
    recorded, now = config["optimizer"].get("sha256"), optimizers.provenance(args.optimizer)["sha256"]
    if optimizers.is_external(args.optimizer) and recorded != now:
        raise UserError(f"cannot resume {run_dir}: the optimizer's source changed since the run started "
                        f"(sha256 {str(recorded)[:12]} -> {str(now)[:12]}); restore it or start again with --overwrite")
    done = checkpoint["epoch"]
    if args.epochs < done:
        raise UserError(f"{run_dir} already has {done} epochs; --epochs {args.epochs} cannot undo them "
                        f"(give --epochs {done} or more)")
    return checkpoint


def check_same_run(run_dir, config, checkpoint):
    """The folder's config.json and checkpoint.pt are one run's: the same run id, the same settings
    (a config.json copied from another run, or edited, is refused: the record must say what ran)."""
    ids = config.get("run_id"), (checkpoint.get("metrics") or {}).get("run_id")
    if None not in ids and ids[0] != ids[1]:
        raise UserError(f"cannot resume {run_dir}: its config.json and checkpoint.pt belong to different runs "
                        f"(run ids {str(ids[0])[:8]} and {str(ids[1])[:8]}); start again with --overwrite")
    recorded, saved = (records.identity(a, records.RESUMABLE) for a in (config["args"], checkpoint["args"]))
    if recorded != saved:
        raise UserError(f"cannot resume {run_dir}: its config.json says other settings than its checkpoint was made "
                        f"with ({records.differences(saved, recorded)}): was it edited or copied? Restore it, or "
                        "start again with --overwrite")


def optimizer_overrides(args):
    """The hyperparameter flags as given (None: not given)."""
    return dict(lr=args.lr, weight_decay=args.weight_decay, betas=args.betas, eps=args.eps,
                bias_correction=False if args.no_bias_correction else None)


def workload_defaults(args, workload):
    """The workload's weight decay, for an optimizer that has one (a user optimizer without a
    weight_decay argument gets none); the flags and --opt override it."""
    if workload.weight_decay is not None and "weight_decay" in optimizers.lookup(args.optimizer).defaults:
        return {"weight_decay": workload.weight_decay}
    return {}


def load_data(workload, device, dataset=None, data_dir=None, data_root=REPO / "input" / "data", limit_train=None,
              limit_val=None, preprocess="standardize", channels_last=True, zca_eps=datasets.ZCA_EPS, val_split=None):
    """The run's data on the device, and the Inputs that turn its samples into model inputs."""
    data = datasets.load(dataset or workload.dataset, data_dir, data_root, limit_train, limit_val,
                         synthetic=workload.synthetic, val_split=val_split)
    data = data.to(device)
    scale = preprocess if preprocess in ("zca", "signed") else workload.scale
    inputs = datasets.make_inputs(data, scale, workload.augment, channels_last and is_conv(workload), zca_eps)
    return datasets.prepare(data, inputs)


def is_conv(workload):
    return models.MODELS[workload.model].input == "image"


def build_model(workload, data, device, dropout=None, dropout_rate=DROPOUT_RATE, channels_last=True):
    """The workload's model for this data (its sample shape and classes), on the device."""
    model = models.build(workload.model, data.sample_shape, len(data.classes), dropout, dropout_rate).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last and is_conv(workload) else model


def check_model_accepts(run):
    """One forward pass on two samples before any work, so that data of the wrong shape for the
    model (8x8 images for the CNN) is one line now, not a traceback in the middle of epoch 0.
    It draws no random numbers that training would see."""
    data = run.data
    x, y = next(datasets.eval_batches(data.train_x, data.train_y, 2, run.inputs))
    devices = [y.device] if y.device.type == "cuda" else []
    objective = workloads.OBJECTIVES[run.workload.objective]
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(), autocast(y.device, run.settings.precision):
            objective(run.models[0].eval(), x, y)
    except RuntimeError as err:
        reason = str(err).splitlines()[0][:160]
        raise UserError(f"the samples ({'x'.join(map(str, data.sample_shape))}) do not fit this workload's model "
                        f"({reason})") from None


def make_config(args, workload, hyper, settings, device, data, model, run_dir, checkpoint, batch_size=1):
    """The self-describing part of the record: enough to rerun it and to know what ran. A run
    trained with others as one stacked model says so (batched: how many); its command is its own."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    batched_with = {"batched": {"trials": batch_size}} if batch_size > 1 else {}
    if checkpoint is not None:
        config = records.load_config(run_dir / records.CONFIG)
        config["args"]["epochs"] = args.epochs             # the record says what the run is now
        config.setdefault("resumed", []).append({"time": now, "command": command_line([*to_argv(args), "--resume"]),
                                                 "from_epoch": checkpoint["epoch"], **batched_with})
        return config
    return {**batched_with,
        "run_id": records.new_run_id(),       # also in the metrics: a reader never mixes two runs' files
        "args": args.as_args(),
        "workload": {"name": args.workload, "objective": workload.objective, "target": list(workload.target),
                     "paper": workload.paper},
        "optimizer": {"name": args.optimizer, "hyperparameters": hyper, "fixed": {k: v for k, v in optimizers.lookup(args.optimizer).fixed.items() if k not in hyper},
                      **optimizers.provenance(args.optimizer)},
        "precision": {"requested": args.precision, "used": settings.precision,
                      "native_bf16": provenance.native_bf16(device)},
        "command": command_line(to_argv(args)),
        "argv": to_argv(args),
        "versions": provenance.versions(),
        "device": provenance.describe_device(device),
        "data": {"source": data.source, "train_size": len(data.train_y), "test_size": len(data.test_y),
                 "val_size": 0 if data.val_y is None else len(data.val_y),
                 "val": "held out of the training set (--val-split)" if data.val_y is not None else "none",
                 "classes": data.classes, "sample_shape": list(data.sample_shape), "mean": data.mean, "std": data.std,
                 "preprocess": args.preprocess},
        "model": {"name": workload.model, "parameters": models.count_parameters(model), "dropout": args.dropout},
        "git": provenance.git_state(),
        "start_time": now,
    }



def configure_backends(threads, tf32, device):
    if threads:
        torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        # Same seed, same device, same numbers: no autotuned, nondeterministic conv algorithms.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
