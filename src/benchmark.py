"""Throughput of this repository's training pipeline against its compute ceiling and the tutorial's.

    python src/benchmark.py                                   # CPU fp32 (or cuda if present)
    python src/benchmark.py --precision bf16
    python src/benchmark.py --data-dir input/data/cifar10-jpeg --json outputs/bench.json

Three measurements in one process, the same model, optimizer (Adam) and batch size:
  compute    forward + backward + step on one fixed batch already on the device: the ceiling
  pipeline   train.train_epoch exactly as train.py runs it: shuffle, batched crop/flip on the
             device, normalise, forward, backward, step, metric accumulation
  tutorial   torchvision RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor + Normalize per PIL
             image, DataLoader(batch_size=128, shuffle=True, num_workers=0), fp32, NCHW, and the
             tutorial's loss.item() every step
Each is timed --rounds times, interleaved, after warm-up steps; the median is reported, so a
noisy neighbour shifts all three alike. Peak resident memory is read after the full dataset is
loaded, a pipeline epoch slice and a full evaluation pass have run, before the tutorial's PIL copy.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import data as datasets
import optimizers
import train
from cli import Parser, positive_int, run_main
from model import AdamPaperCNN

EPOCHS = 45
TRAIN_SIZE, VAL_SIZE = 50_000, 10_000    # CIFAR-10, for the projection


def build_parser():
    p = Parser(description="Images/second of compute alone, this pipeline, and the tutorial's pipeline.")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="for compute and pipeline (default: fp32)")
    p.add_argument("--compile", choices=["off", "on", "cudagraphs"], default="off", help="torch.compile (default: off)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True, help="(default: on)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="(default: 128)")
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps per round and measurement (default: 20)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed steps before each measurement (default: 3)")
    p.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; the median is reported (default: 3)")
    p.add_argument("--data-dir", help="image folder to load (default: synthetic data of CIFAR-10's size)")
    p.add_argument("--data-root", default=str(train.REPO / "input" / "data"), help="cache folder parent (default: input/data)")
    p.add_argument("--tiny", action="store_true", help="smoke test: 512 synthetic images, no full evaluation")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's choice)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = train.pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load(args).to(device)
    run_args = train_args(args)
    train.configure_backends(run_args, device)
    model, opt = make_model(args, device, args.channels_last)
    step_model = train.compiled(model, args.compile)
    measure = {"compute": lambda n: time_compute(step_model, opt, data, args, n),
               "pipeline": lambda n: time_pipeline(step_model, opt, data, run_args, n)}
    results = {name: [] for name in measure}
    for _ in range(args.rounds):
        for name, fn in measure.items():
            results[name].append(fn(args.steps))
    eval_ips = time_eval(model, data, run_args, device)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["tutorial"] = time_tutorial(args, data, device)
    report = summarise(args, device, results, eval_ips, peak_rss_mb)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def load(args):
    if args.tiny:
        return datasets.limit(datasets.make_synthetic(n_train=512, n_test=256), None, None)
    if args.data_dir:
        return datasets.load(None, args.data_dir, args.data_root)
    return datasets.make_synthetic(n_train=TRAIN_SIZE, n_test=VAL_SIZE)


def train_args(args):
    return train.build_parser().parse_args(["--batch-size", str(args.batch_size), "--precision", args.precision,
                                            "--quiet", "--channels-last" if args.channels_last else "--no-channels-last"])


def make_model(args, device, channels_last):
    torch.manual_seed(0)
    model = AdamPaperCNN().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, optimizers.build("adam", model.parameters(), optimizers.resolve("adam", {}))


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_compute(model, opt, data, args, steps):
    """Images/s of forward, backward and step on one fixed, already-normalised batch."""
    x = datasets.normalize(data.train_x[:args.batch_size], args.channels_last)
    y = data.train_y[:args.batch_size]

    def run(n):
        model.train()
        for _ in range(n):
            with train.autocast(x.device, args.precision):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    run(args.warmup)
    return steps * args.batch_size / timed(x.device, lambda: run(steps))


def time_pipeline(model, opt, data, run_args, steps):
    """Images/s of train.train_epoch itself, on an epoch cut to steps (+ warm-up) batches."""
    generator = torch.Generator().manual_seed(0)
    metrics = {"iter_loss": []}
    stop = train.StopRequest(handle_signals=False)

    def epoch(n):
        part = datasets.limit(data, n * run_args.batch_size, 1)
        return lambda: train.train_epoch(model, opt, generator, part, run_args, metrics, stop)
    epoch(3)()
    return steps * run_args.batch_size / timed(data.train_x.device, epoch(steps))


def time_eval(model, data, run_args, device):
    """Images/s of the evaluation pass over the test set (large batches, inference mode)."""
    return len(data.test_y) / timed(device, lambda: train.evaluate(model, data.test_x, data.test_y, run_args))


def time_tutorial(args, data, device):
    """Images/s of the tutorial's per-image PIL pipeline feeding the same model, fp32, NCHW."""
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    n = (args.steps + args.warmup) * args.batch_size
    images = [Image.fromarray(a) for a in data.train_x[:n].permute(0, 2, 3, 1).cpu().numpy()]
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize(datasets.MEAN, datasets.STD)])
    dataset = list(zip(images, data.train_y[:n].tolist()))
    loader = DataLoader(TransformedList(dataset, tf), batch_size=args.batch_size, shuffle=True, num_workers=0)
    model, opt = make_model(args, device, channels_last=False)
    rounds = []
    for _ in range(args.rounds):
        rounds.append(time_tutorial_epoch(model, opt, loader, args, device))
    return rounds


class TransformedList(torch.utils.data.Dataset):
    def __init__(self, items, transform):
        self.items, self.transform = items, transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        img, label = self.items[i]
        return self.transform(img), label


def time_tutorial_epoch(model, opt, loader, args, device):
    model.train()
    running_loss, seen, start = 0.0, 0, None
    for i, (x, y) in enumerate(loader):
        if i == args.warmup:
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


def summarise(args, device, results, eval_ips, peak_rss_mb):
    ips = {name: statistics.median(values) for name, values in results.items()}
    epoch_s = {name: TRAIN_SIZE / v for name, v in ips.items()}
    eval_s = VAL_SIZE / eval_ips
    return {
        "device": train.describe_device(device), "precision": args.precision, "compile": args.compile,
        "channels_last": args.channels_last, "batch_size": args.batch_size, "steps": args.steps,
        "rounds": args.rounds, "torch": torch.__version__,
        "images_per_s": ips, "images_per_s_rounds": results, "eval_images_per_s": eval_ips,
        "ratio_pipeline_to_compute": ips["pipeline"] / ips["compute"],
        "ratio_pipeline_to_tutorial": ips["pipeline"] / ips["tutorial"],
        "epoch_s": epoch_s,
        # 45 training epochs plus 46 validation passes (epoch 0 and after each epoch) and the
        # epoch-0 pass over the training set.
        "projected_45_epochs_s": EPOCHS * epoch_s["pipeline"] + (EPOCHS + 1) * eval_s + TRAIN_SIZE / eval_ips,
        "peak_rss_mb": peak_rss_mb,
    }


def print_report(r):
    d = r["device"]
    print(f"device {d['type']} ({d['name']}, {d['threads']} threads), {r['precision']}, compile {r['compile']}, "
          f"channels_last {r['channels_last']}, batch {r['batch_size']}, torch {r['torch']}")
    for name in ("compute", "pipeline", "tutorial"):
        rounds = ", ".join(f"{v:.0f}" for v in r["images_per_s_rounds"][name])
        print(f"  {name:<9} {r['images_per_s'][name]:8.0f} images/s   ({r['epoch_s'][name]:6.1f} s per 50k-image epoch; rounds: {rounds})")
    print(f"  eval      {r['eval_images_per_s']:8.0f} images/s")
    print(f"  pipeline / compute  = {r['ratio_pipeline_to_compute']:.3f}")
    print(f"  pipeline / tutorial = {r['ratio_pipeline_to_tutorial']:.2f}")
    print(f"  projected 45-epoch run (with evaluation): {r['projected_45_epochs_s'] / 60:.1f} min")
    print(f"  peak resident memory: {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.exit(run_main(main))
