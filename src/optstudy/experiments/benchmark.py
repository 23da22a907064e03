"""The measurements of benchmark.py (its docstring says what each mode times): the same public
functions of the training loop as train.py runs, timed."""
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

import model as models
from optstudy.core import provenance
from optstudy.core.cli import UserError
from optstudy.core.settings import RunConfig
from optstudy.data import datasets
from optstudy.records import store as records
from optstudy.training import loop, optimizers, setup, stacking, workloads

SCRIPT = provenance.REPO / "src" / "benchmark.py"      # --workload all runs each workload in its own process

POOL_BYTES = 64 * 2**20      # the compute measurement cycles through this much of model inputs


@dataclass(frozen=True)
class BenchmarkConfig:
    """What benchmark.py is asked to measure: its flags (its build_parser says what each means)."""
    workload: str                # a workload name, or all
    dataset: str
    data_dir: str
    data_root: str
    device: str
    precision: str
    compile: str
    channels_last: bool
    batch_size: int
    optimizer: str
    opt: list
    steps: int
    warmup: int
    rounds: int
    tiny: bool
    threads: int
    json: str
    overhead: bool
    dropout: str
    stack_sizes: list            # stack mode: the K of each stack of runs trained together






def measure(args):
    workload = workloads.WORKLOADS[args.workload]
    device = provenance.pick_device(args.device)
    setup.configure_backends(args.threads, True, device)
    settings = loop.Settings(args.batch_size or workload.batch_size, provenance.resolve_precision(args.precision, device),
                              eval_batch_size=workload.eval_batch_size)
    hyper = optimizers.resolve(args.optimizer, {}, optimizers.parse_opts(args.opt))    # bad names fail before loading
    data, inputs = load(args, workload, device)
    model, opt = make_model(workload, data, device, args.channels_last, args.optimizer, hyper)
    step_model = loop.compiled(model, args.compile)
    objective = workloads.OBJECTIVES[workload.objective]
    measure = {"compute": lambda n: time_compute(step_model, opt, objective, data, inputs, settings, n, args.warmup),
               "pipeline": lambda n: time_pipeline(step_model, opt, workload, data, inputs, settings, n, args.warmup)}
    results = {name: [] for name in measure}
    for _ in range(args.rounds):
        for name, fn in measure.items():
            results[name].append(fn(args.steps))
    eval_sps = time_eval(model, workload, data, inputs, settings, device)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.workload == "cifar10-cnn":
        results["tutorial"] = time_tutorial(args, data, settings, device)
    return summarise(args, workload, settings, device, data, results, eval_sps, peak_rss_mb)


def load(args, workload, device):
    """The data as train.py loads it; CIFAR-10 workloads default to synthetic data of its full size."""
    dataset = args.dataset or ("synthetic" if workload.dataset == "cifar10" and not args.data_dir else None)
    if args.tiny:
        dataset, size = "synthetic", {"n_train": 512, "n_test": 256}
    elif dataset == "synthetic" and workload.dataset == "cifar10":
        size = dict(zip(("n_train", "n_test"), datasets.DATASETS["cifar10"].sizes))
    else:
        size = {}
    workload = replace(workload, synthetic=partial(workload.synthetic, **size))
    return setup.load_data(workload, device, dataset, args.data_dir, args.data_root, channels_last=args.channels_last)


def make_model(workload, data, device, channels_last, optimizer="adam", hyper=None):
    torch.manual_seed(0)
    model = setup.build_model(workload, data, device, channels_last=channels_last)
    return model, optimizers.build(optimizer, model.parameters(), hyper or optimizers.resolve(optimizer, {}))


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_compute(model, opt, objective, data, inputs, settings, steps, warmup):
    """Samples/s of the loss, backward and step alone, on batches already in model-input form (random,
    augmented as in training). They are cycled from a pool of up to POOL_BYTES, so that, as in
    training, each batch comes from memory: one fixed batch would sit in the cache and overstate
    the ceiling by 20-30% for the small workloads."""
    batches = itertools.islice(datasets.train_batches(data, inputs, settings.batch_size, torch.Generator().manual_seed(1)),
                               pool_size(data, inputs, settings.batch_size, steps))
    pool = list(batches)

    def run(n):
        model.train()
        for i in range(n):
            x, y = pool[i % len(pool)]
            with loop.autocast(y.device, settings.precision):
                loss, _ = objective(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    run(warmup)
    return steps * settings.batch_size / timed(pool[0][1].device, lambda: run(steps))


def pool_size(data, inputs, batch_size, steps):
    """Batches in the compute pool: as many as fit POOL_BYTES, at least 1, at most `steps`."""
    x, _ = next(datasets.eval_batches(data.train_x, data.train_y, batch_size, inputs))
    nbytes = x.cols.numel() * 8 if hasattr(x, "cols") else x.numel() * x.element_size()
    return max(1, min(steps, POOL_BYTES // max(nbytes, 1), datasets.batches_per_epoch(len(data.train_y), batch_size)))


def as_run(model, workload, data, inputs, settings, steps=1):
    """A loop.Run of one member around this model, for the loop's own functions; no record is written."""
    member = loop.Member(RunConfig(), {}, Path("benchmark"), metrics=records.new_metrics(steps),
                        generator=torch.Generator().manual_seed(0))
    return loop.Run(model, workload, data, inputs, settings, [member], [model], resume_hint=False)


def time_pipeline(model, opt, workload, data, inputs, settings, steps, warmup):
    """Samples/s of loop.train_epoch itself, on an epoch cut to `steps` batches."""
    stop = loop.StopRequest(handle_signals=False)

    def epoch(n):
        part = datasets.limit(data, n * settings.batch_size, 1)
        run = as_run(model, workload, part, inputs, settings, n)
        return part, lambda: loop.train_epoch(model, opt, run, 1, stop)
    epoch(warmup)[1]()
    part, run = epoch(steps)          # fewer steps than asked if the dataset is smaller
    return len(part.train_y) / timed(data.train_y.device, run)


def time_eval(model, workload, data, inputs, settings, device):
    """Samples/s of the evaluation pass over the test split (large batches, inference mode)."""
    run = as_run(model, workload, data, inputs, settings)
    return len(data.test_y) / timed(device, lambda: loop.evaluate(run, data.test_x, data.test_y))


def time_tutorial(args, data, settings, device):
    """Images/s of the tutorial's per-image PIL pipeline feeding the same model, fp32, NCHW."""
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    n = (args.steps + args.warmup) * settings.batch_size
    raw = datasets.load("synthetic", args.data_dir, args.data_root, synthetic=datasets.make_synthetic) \
        if args.tiny or not args.data_dir else datasets.load(None, args.data_dir, args.data_root)
    images = [Image.fromarray(a) for a in raw.train_x[:n].permute(0, 2, 3, 1).numpy()]
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(datasets.CIFAR10_MEAN, datasets.CIFAR10_STD)])
    dataset = list(zip(images, raw.train_y[:n].tolist()))
    loader = DataLoader(TransformedList(dataset, tf), batch_size=settings.batch_size, shuffle=True, num_workers=0)
    model, opt = make_model(workloads.WORKLOADS["cifar10-cnn"], data, device, channels_last=False)
    return [time_tutorial_epoch(model, opt, loader, args.warmup, device) for _ in range(args.rounds)]


class TransformedList(torch.utils.data.Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        img, label = self.items[i]
        return self.transform(img), label


def time_tutorial_epoch(model, opt, loader, warmup, device):
    model.train()
    running_loss, seen, start = 0.0, 0, None
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running_loss += loss.item()        # the tutorial's per-step host sync
        seen += len(y) if start is not None else 0
    sync(device)
    return seen / (time.perf_counter() - start)


def summarise(args, workload, settings, device, data, results, eval_sps, peak_rss_mb):
    sps = {name: statistics.median(values) for name, values in results.items()}
    train_size, test_size = datasets.DATASETS[workload.dataset].sizes
    epoch_s = {name: train_size / v for name, v in sps.items()}
    eval_s = test_size / eval_sps
    report = {
        "workload": args.workload, "optimizer": args.optimizer, "dataset": data.source, "device": provenance.describe_device(device),
        "precision": settings.precision, "compile": args.compile, "channels_last": args.channels_last,
        "batch_size": settings.batch_size, "steps": args.steps, "rounds": args.rounds, "torch": torch.__version__,
        "samples_per_s": sps, "samples_per_s_rounds": results, "eval_samples_per_s": eval_sps,
        "ratio_pipeline_to_compute": sps["pipeline"] / sps["compute"],
        "epoch_s": epoch_s, "full_dataset": {"train": train_size, "test": test_size}, "epochs": workload.epochs,
        # The default epochs, plus the evaluations after each epoch and at epoch 0 (test, and train).
        "projected_run_s": workload.epochs * epoch_s["pipeline"] + (workload.epochs + 1) * eval_s + train_size / eval_sps,
        "peak_rss_mb": peak_rss_mb,
    }
    if "tutorial" in sps:
        report["ratio_pipeline_to_tutorial"] = sps["pipeline"] / sps["tutorial"]
    return report


def print_report(r):
    d = r["device"]
    print(f"{r['workload']} with {r.get('optimizer', 'adam')} on {r['dataset']}: device {d['type']} ({d['name']}, {d['cpu']['capability']}, "
          f"{d['threads']} threads), {r['precision']}, compile {r['compile']}, batch {r['batch_size']}, torch {r['torch']}")
    for name in r["samples_per_s"]:
        rounds = ", ".join(f"{v:.0f}" for v in r["samples_per_s_rounds"][name])
        print(f"  {name:<9} {r['samples_per_s'][name]:9.0f} samples/s   ({r['epoch_s'][name]:7.2f} s per "
              f"{r['full_dataset']['train']}-sample epoch; rounds: {rounds})")
    print(f"  eval      {r['eval_samples_per_s']:9.0f} samples/s")
    print(f"  pipeline / compute  = {r['ratio_pipeline_to_compute']:.3f}")
    if "ratio_pipeline_to_tutorial" in r:
        print(f"  pipeline / tutorial = {r['ratio_pipeline_to_tutorial']:.2f}")
    print(f"  projected {r['epochs']}-epoch run (with evaluation): {r['projected_run_s'] / 60:.1f} min")
    print(f"  peak resident memory: {r['peak_rss_mb']:.0f} MB")


# ---------------------------------------------------------------- overhead mode

# (optimizer, --opt settings, words): the registry's optimizers as they run, and torch's Adam and
# Adamax in each implementation beside the paper's, written here.
OVERHEAD = [("sgd", {}, "SGD-Nesterov (the baseline)"), ("momentum", {}, ""), ("adagrad", {}, ""), ("rmsprop", {}, ""),
            ("adadelta", {}, ""), ("adamw", {}, ""),
            ("adam", {"foreach": False}, "torch, single-tensor"), ("adam", {"foreach": True}, "torch, foreach"),
            ("adam", {"fused": True}, "torch, fused"), ("paper-adam", {}, "written here from Algorithm 1"),
            ("adamax", {"foreach": False}, "torch, single-tensor"), ("adamax", {"foreach": True}, "torch, foreach"),
            ("paper-adamax", {}, "written here from section 7.1")]


def overhead_mode(args):
    names = workloads.names() if args.workload == "all" else [args.workload]
    device = provenance.pick_device(args.device)
    setup.configure_backends(args.threads, True, device)
    rows = [row for name in names for row in measure_overhead(name, device, args)]
    return report_rows(args, device, "fp32", rows, overhead_table)


def report_rows(args, device, what, rows, table):
    """The device and settings in one line, the table, and the rows in --json if asked."""
    d = provenance.describe_device(device)
    print(f"device {d['type']} ({d['name']}, {d['cpu']['capability']}, {d['threads']} threads), {what}, "
          f"{args.steps} steps x {args.rounds} rounds, torch {torch.__version__}")
    print(table(rows))
    if args.json:
        records.save_json({"device": d, "rows": rows}, args.json)
    return 0


def measure_overhead(name, device, args):
    """Median microseconds of optimizer.step() per variant, on the workload's model with fixed gradients."""
    workload = workloads.WORKLOADS[name]
    data = workload.synthetic(n_train=8, n_test=8)
    torch.manual_seed(0)
    model = setup.build_model(workload, data, device, channels_last=False)
    grads = [torch.randn_like(p) * 1e-3 for p in model.parameters()]
    built = {}
    for optimizer, opts, words in OVERHEAD:
        try:
            built[(optimizer, repr(opts))] = optimizers.build(optimizer, model.parameters(), optimizers.resolve(optimizer, {}, opts))
        except UserError:
            built[(optimizer, repr(opts))] = None       # e.g. no fused kernel for this device in this build
    times = {key: [] for key, opt in built.items() if opt is not None}
    for _ in range(args.rounds):
        for key in times:
            times[key].append(time_steps(built[key], model, grads, device, args.steps, args.warmup))
    params = sum(p.numel() for p in model.parameters())
    sgd = statistics.median(times[("sgd", "{}")])
    return [{"workload": name, "parameters": params, "optimizer": optimizer, "opts": opts, "what": words,
             "us_per_step": statistics.median(times[key]) if key in times else None,
             "ratio_to_sgd": statistics.median(times[key]) / sgd if key in times else None}
            for optimizer, opts, words in OVERHEAD for key in [(optimizer, repr(opts))]]


def time_steps(optimizer, model, grads, device, steps, warmup):
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    for _ in range(warmup):
        optimizer.step()
    seconds = timed(device, lambda: [optimizer.step() for _ in range(steps)])
    return seconds / steps * 1e6


def overhead_table(rows):
    lines = ["| workload (parameters) | optimizer | implementation | us per step | x SGD |", "|" + "---|" * 5]
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["opts"].items())
        us = f"{r['us_per_step']:.0f}" if r["us_per_step"] is not None else "n/a (not in this build)"
        ratio = f"{r['ratio_to_sgd']:.2f}" if r["ratio_to_sgd"] is not None else "-"
        lines.append(f"| {r['workload']} ({r['parameters']:,}) | {r['optimizer']} | {r['what'] or opts or '-'} | "
                     f"{us} | {ratio} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- stack mode

def stack_mode(args):
    names = [args.workload] if args.workload != "all" else [
        n for n in workloads.names() if models.stackable(workloads.WORKLOADS[n].model)]
    for name in names:
        model = workloads.WORKLOADS[name].model
        if not models.stackable(model):
            raise UserError(f"--stack-sizes: workload {name} has no stacked model (stackable: "
                            f"{', '.join(n for n in workloads.names() if models.stackable(workloads.WORKLOADS[n].model))})")
        if args.dropout and args.dropout not in models.MODELS[model].dropouts:
            raise UserError(f"--dropout {args.dropout}: workload {name} (model {model}) takes "
                            f"{', '.join(models.MODELS[model].dropouts)}")
    rows = [row for name in names for row in measure_stacks(args, name)]
    what = args.optimizer + (f", dropout {args.dropout}" if args.dropout else ", the workload's dropout")
    return report_rows(args, provenance.pick_device(args.device), what, rows, stack_table)


def measure_stacks(args, name):
    """Per K and data order: member-steps/s, and the ratio to a solo run timed just before it, in
    every round (paired: a slow spell of a shared machine hits both); the median over the rounds
    and the range of the ratios."""
    workload = workloads.WORKLOADS[name]
    device = provenance.pick_device(args.device)
    setup.configure_backends(args.threads, True, device)
    settings = loop.Settings(args.batch_size or workload.batch_size, provenance.resolve_precision(args.precision, device),
                              eval_batch_size=workload.eval_batch_size)
    hyper = optimizers.resolve(args.optimizer, {}, optimizers.parse_opts(args.opt))
    data, inputs = load(args, workload, device)
    steps = [False, True] if type(optimizers.build(args.optimizer, [torch.zeros(1, requires_grad=True)], hyper)) in (
        torch.optim.Adam, torch.optim.SGD) else [False]
    configs = [(k, shared, stacked) for k in args.stack_sizes if k > 1 for shared in (True, False) for stacked in steps]
    rate = lambda c: time_stack(*c, workload, data, inputs, settings, device, args, hyper)
    pairs = {c: [] for c in configs}
    for _ in range(args.rounds):
        for c in configs:
            pairs[c].append((rate((1, True, False)), rate(c)))
    solo = [s for p in pairs.values() for s, _ in p] or [rate((1, True, False)) for _ in range(args.rounds)]
    rows = [stack_row(name, (1, True, False), [(s, s) for s in solo])]
    return rows + [stack_row(name, c, p) for c, p in pairs.items()]


def stack_row(name, config, pairs):
    """A table row from [(solo rate, batched rate)] of the rounds."""
    k, shared, stacked = config
    ratios = [b / s for s, b in pairs]
    return {"workload": name, "members": k, "data_order": "shared" if shared else "own",
            "step": "stacked" if stacked else "per member",
            "member_steps_per_s": statistics.median(b for _, b in pairs),
            "solo_member_steps_per_s": statistics.median(s for s, _ in pairs),
            "ratio": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)]}


def time_stack(k, shared, stacked, workload, data, inputs, settings, device, args, hyper):
    """Member-steps/s of loop.train_epoch on k stacked members (k = 1: a solo run), after a warm-up."""
    stop = loop.StopRequest(handle_signals=False)
    part = datasets.limit(data, args.steps * settings.batch_size, 1)
    run = stack_run(k, shared, workload, part, inputs, settings, device, args.optimizer, hyper, stacked, args.dropout)
    optimizer = loop.build_optimizer(run)
    run.fast_step = stacking.StackedStep(optimizer, run.model) if stacked else None
    warm = replace(run, data=datasets.limit(data, args.warmup * settings.batch_size, 1))
    loop.train_epoch(run.model, optimizer, warm, 1, stop)          # the same model, optimizer and buffers, warm
    seconds = timed(device, lambda: loop.train_epoch(run.model, optimizer, run, 1, stop))
    return k * datasets.batches_per_epoch(len(part.train_y), settings.batch_size) / seconds


def stack_run(k, shared, workload, data, inputs, settings, device, optimizer, hyper, stacked_step=False, dropout=None):
    """k members as the sweep would batch them: each its own learning rate, seed (or one shared seed)."""
    members_, models_ = [], []
    for i in range(k):
        seed = 0 if shared else i
        own = dict(hyper, lr=hyper["lr"] * (1 + i / k)) if "lr" in hyper else hyper
        member = loop.Member(RunConfig(optimizer=optimizer, seed=seed), own, Path(f"member{i}"),
                            metrics=records.new_metrics(1), generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)
        models_.append(setup.build_model(workload, data, device, dropout, channels_last=False))
        member.noise = torch.Generator(device=device).manual_seed(seed + 1) if k > 1 else None
        members_.append(member)
    model = models_[0] if k == 1 else stacking.Stack(models_, [t.noise for t in members_], stacked_step)
    return loop.Run(model, workload, data, inputs, settings, members_, models_, resume_hint=False)


def stack_table(rows):
    lines = ["| workload | K | data order | optimizer step | member-steps/s batched | one after another | "
             "speed-up (range over rounds) |",
             "|" + "---|" * 7]
    for r in rows:
        if r["members"] > 1:
            low, high = r["ratio_range"]
            spread = f" ({low:.2f}-{high:.2f})" if high > low else ""
            lines.append(f"| {r['workload']} | {r['members']} | {r['data_order']} | {r['step']} | "
                         f"{r['member_steps_per_s']:.0f} | {r['solo_member_steps_per_s']:.0f} | {r['ratio']:.2f}x{spread} |")
    return "\n".join(lines)


def run_all(args, argv):
    """Every workload in its own process (so that each peak memory is its own), then one table."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in workloads.names():
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(SCRIPT), *without(argv, "--workload", "--json"), "--workload", name, "--json", str(out)]
            proc = subprocess.run(cmd, text=True, capture_output=True)
            print(proc.stdout, end="", flush=True)
            if proc.returncode != 0:
                raise UserError(f"{name}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'}")
            rows.append(json.loads(out.read_text()))
    print(markdown_table(rows))
    if args.json:
        records.save_json(rows, args.json)
    return 0


def without(argv, *flags):
    """argv less the given flags and their values (--flag VALUE or --flag=VALUE)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=")[0] in flags:
            skip = "=" not in a
        else:
            out.append(a)
    return out


def markdown_table(rows):
    lines = ["| workload | data | device | precision | compute samples/s | pipeline samples/s | pipeline / compute "
             "| s per epoch | default run | peak RSS |", "|" + "---|" * 10]
    for r in rows:
        d = r["device"]
        lines.append(f"| {r['workload']} | {r['dataset'].split(':')[0]} | {d['name']} ({d['cpu']['capability']}, "
                     f"{d['threads']} threads) | {r['precision']} | {r['samples_per_s']['compute']:.0f} | "
                     f"{r['samples_per_s']['pipeline']:.0f} | {r['ratio_pipeline_to_compute']:.2f} | "
                     f"{r['epoch_s']['pipeline']:.2f} | {r['epochs']} epochs: {r['projected_run_s'] / 60:.1f} min | "
                     f"{r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)
