"""Datasets as uint8 tensors on the training device, and batched augmentation on that device.

In the manner of KellerJordan/cifar10-airbench: images are decoded once, cached as uint8
tensors, moved to the device whole, and augmented per batch with tensor ops (per-sample
random crop from a zero-padded image, per-sample horizontal flip), then normalised.
There is no PIL in the training loop and no DataLoader.

Sources:
- cifar10: the official python archive via torchvision (md5-verified), in --data-root.
- --data-dir DIR: an image folder DIR/{train,test}/<class>/*.{png,jpg,jpeg}.
- synthetic: CIFAR-shaped, generated from a fixed seed, for offline smoke runs and tests.
"""
import hashlib
import math
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cli import UserError

# The tutorial's normalisation (CIFAR-10 channel statistics), used for every dataset.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
PAD = 4                      # RandomCrop(32, padding=4)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CACHE_FORMAT = 1             # bump when the cache layout changes
SYNTHETIC_SEED = 0           # one synthetic dataset for every run seed, so seeds are comparable
SUBSET_SEED = 0              # likewise for --limit-train / --limit-val subsets
CIFAR10_HELP = ("put cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) into {root}/, "
                "or use --data-dir DIR with DIR/{{train,test}}/<class>/*.png, or --dataset synthetic")


@dataclass
class Data:
    train_x: torch.Tensor    # (N, C, H, W) uint8
    train_y: torch.Tensor    # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list
    source: str              # where the images came from, for the run record

    def to(self, device):
        move = lambda t: t.to(device, non_blocking=True)
        return Data(move(self.train_x), move(self.train_y), move(self.test_x), move(self.test_y),
                    self.classes, self.source)


# ---------------------------------------------------------------- loading

def load(dataset, data_dir=None, data_root="input/data", limit_train=None, limit_val=None):
    """The chosen dataset on the CPU, optionally cut to fixed random subsets."""
    if data_dir is not None:
        data = load_image_folder(Path(data_dir), Path(data_root) / "cache")
    elif dataset == "cifar10":
        data = load_cifar10(Path(data_root))
    elif dataset == "synthetic":
        data = make_synthetic()
    else:
        raise UserError(f"unknown dataset {dataset!r}")
    return limit(data, limit_train, limit_val)


def limit(data, limit_train, limit_val):
    """Fixed random subsets (the same for every run seed), so short runs see every class."""
    g = torch.Generator().manual_seed(SUBSET_SEED)
    train_idx = torch.randperm(len(data.train_y), generator=g)[:limit_train]
    test_idx = torch.randperm(len(data.test_y), generator=g)[:limit_val]
    return Data(data.train_x[train_idx], data.train_y[train_idx], data.test_x[test_idx],
                data.test_y[test_idx], data.classes, data.source)


def load_cifar10(root):
    """The official CIFAR-10 python archive, through torchvision (which checks its md5)."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    archive = root / CIFAR10.filename
    if archive.exists() and not check_integrity(str(archive), CIFAR10.tgz_md5):
        raise UserError(f"{archive} is corrupt or truncated (md5 mismatch): delete it and download it again")
    root.mkdir(parents=True, exist_ok=True)
    try:
        train, test = (CIFAR10(str(root), train=split, download=True) for split in (True, False))
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else err.__class__.__name__
        raise UserError(f"CIFAR-10 is not in {root} and could not be downloaded ({reason}): "
                        + CIFAR10_HELP.format(root=root)) from None
    as_tensors = lambda ds: (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets))
    (train_x, train_y), (test_x, test_y) = as_tensors(train), as_tensors(test)
    return Data(train_x, train_y, test_x, test_y, list(train.classes), f"cifar10:{root}")


def load_image_folder(root, cache_dir):
    """DIR/{train,test}/<class>/*.{png,jpg,jpeg}, decoded once and cached as uint8 tensors."""
    files = scan_image_folder(root)
    key = _listing_hash(root, files)
    cache = cache_dir / f"imagefolder-{root.resolve().name}-{key}.pt"
    data = read_cache(cache)
    if data is None:
        data = decode_image_folder(root, files)
        write_cache(data, cache)
    return data


def scan_image_folder(root):
    """{'train': [(path, label)], 'test': [...], 'classes': [...]}, checking the layout."""
    if not root.is_dir():
        raise UserError(f"--data-dir {root} does not exist or is not a directory")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise UserError(f"--data-dir {root} has no {split}/ folder (expected {root}/{{train,test}}/<class>/*.png)")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"{root}/train has no class folders")
    if test_classes != classes:
        diff = sorted(set(classes) ^ set(test_classes))
        raise UserError(f"{root}/test classes differ from {root}/train classes: {', '.join(diff)}")
    files = {"classes": classes}
    for split in ("train", "test"):
        files[split] = []
        for label, name in enumerate(classes):
            images = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise UserError(f"{root / split / name} has no .png or .jpg images")
            files[split] += [(p, label) for p in images]
    return files


def decode_image_folder(root, files):
    print(f"decoding {len(files['train']) + len(files['test'])} images from {root} (once; then cached)")
    (train_x, train_y), (test_x, test_y) = (_decode(files[s]) for s in ("train", "test"))
    if train_x.shape[1:] != test_x.shape[1:]:
        raise UserError(f"{root}: train images are {tuple(train_x.shape[2:])}, test images {tuple(test_x.shape[2:])}")
    return Data(train_x, train_y, test_x, test_y, files["classes"], f"image-folder:{root.resolve()}")


def _decode(pairs):
    from PIL import Image

    arrays, shape = [], None
    for path, _ in pairs:
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as err:
            raise UserError(f"cannot read image {path}: {err}") from None
        if shape is None:
            shape = array.shape
        elif array.shape != shape:
            raise UserError(f"image {path} is {array.shape[1]}x{array.shape[0]}, others are {shape[1]}x{shape[0]}")
        arrays.append(array)
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor([label for _, label in pairs])


def _listing_hash(root, files):
    """Changes when any file is added, removed, resized or touched, so the cache never goes stale."""
    h = hashlib.sha1(str(root.resolve()).encode())
    for split in ("train", "test"):
        for path, label in files[split]:
            st = path.stat()
            h.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def read_cache(path):
    """The cached Data, or None if absent; a damaged cache is reported and rebuilt."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        assert blob["format"] == CACHE_FORMAT
        data = Data(*(blob[k] for k in ("train_x", "train_y", "test_x", "test_y", "classes", "source")))
        assert data.train_x.dtype == torch.uint8 and len(data.train_x) == len(data.train_y)
        assert data.test_x.dtype == torch.uint8 and len(data.test_x) == len(data.test_y)
        return data
    except Exception as err:  # any damage at all means: rebuild from the images
        print(f"warning: data cache {path} is corrupt ({err.__class__.__name__}); rebuilding it from the source")
        return None


def write_cache(data, path):
    from records import atomic_write

    blob = dict(vars(data), format=CACHE_FORMAT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(blob, tmp))
    except OSError as err:  # a read-only data root should not stop training
        print(f"warning: could not write data cache {path} ({err}); images will be decoded again next time")


def make_synthetic(n_train=10000, n_test=2000, num_classes=10, size=32, seed=SYNTHETIC_SEED):
    """CIFAR-shaped uint8 images: a smooth colour layout per class plus strong noise and a
    random brightness shift, so a CNN learns it over a few epochs but not in one step."""
    g = torch.Generator().manual_seed(seed)
    layouts = F.interpolate(torch.rand(num_classes, 3, 4, 4, generator=g), size=size, mode="bilinear")

    def sample(n):
        y = torch.randint(num_classes, (n,), generator=g)
        shift = 0.3 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
        x = 0.5 * layouts[y] + 0.25 + shift + 0.35 * torch.randn(n, 3, size, size, generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), y

    (train_x, train_y), (test_x, test_y) = sample(n_train), sample(n_test)
    return Data(train_x, train_y, test_x, test_y, [f"class{i}" for i in range(num_classes)], f"synthetic:seed{seed}")


# ---------------------------------------------------------------- batches

def normalize(x_uint8, channels_last=True):
    """uint8 (N, C, H, W) -> float, normalised with the tutorial's mean and std."""
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(STD, device=x_uint8.device).view(1, -1, 1, 1) * 255
    x = (x_uint8.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def epoch_plan(n, generator):
    """The epoch's random choices, drawn on the CPU from the seeded generator so that they
    are identical on every device: sample order, crop offsets and flips."""
    order = torch.randperm(n, generator=generator)
    offsets = torch.randint(0, 2 * PAD + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    return order, offsets, flips


def crop_flip(images, offsets, flips):
    """Per sample: an HxW window at (dy, dx) of the zero-padded image, mirrored where flips.

    Padding happens on uint8, before normalisation, as torchvision's RandomCrop(padding=4)
    on PIL images does. One gather does both crop and flip."""
    n, c, h, w = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)           # (n, h)
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)           # (n, w)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def train_batches(data, batch_size, generator, channels_last=True):
    """Yield the epoch's augmented, normalised batches (x, y); the last may be smaller."""
    order, offsets, flips = (t.to(data.train_x.device) for t in epoch_plan(len(data.train_y), generator))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        images = crop_flip(data.train_x[idx], offsets[start:start + batch_size], flips[start:start + batch_size])
        yield normalize(images, channels_last), data.train_y[idx]


def eval_batches(x, y, batch_size, channels_last=True):
    for start in range(0, len(y), batch_size):
        yield normalize(x[start:start + batch_size], channels_last), y[start:start + batch_size]


def batches_per_epoch(n, batch_size):
    return math.ceil(n / batch_size)
