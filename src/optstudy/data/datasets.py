"""Datasets as compact tensors on the training device, and batched input processing on that device.

In the manner of KellerJordan/cifar10-airbench: samples are decoded once, cached, moved to the
device whole, and turned into model inputs per batch with tensor ops (per-sample random crop from a
zero-padded image, per-sample horizontal flip, normalisation or ZCA whitening). There is no PIL in
the training loop and no DataLoader.

Every dataset is one entry of DATASETS (adding one is one entry): how to load it, what kind of
samples it holds, and its input statistics. Sources:
- cifar10: the official python archive via torchvision (md5-verified), in --data-root.
- mnist, fashion-mnist: the four official .gz files via torchvision (md5-verified), in
  --data-root/MNIST/raw or --data-root/FashionMNIST/raw.
- imdb: the official aclImdb_v1.tar.gz or its extracted aclImdb/ folder, as 10,000-word binary
  bags of words (bow.py), never dense.
- --data-dir DIR: an image folder DIR/{train,test}/<class>/*.{png,jpg,jpeg}; statistics measured.
- synthetic: data of a workload's shape, generated from a fixed seed, for offline runs and tests.
"""
import hashlib
import math
import urllib.error
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from optstudy.core.cli import UserError
from optstudy.data import bow
from optstudy.records import store

# The tutorial's CIFAR-10 normalisation (its std is the classic 0.2023 that many tutorials copy).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
PAD = 4                      # RandomCrop(32, padding=4)
ZCA_EPS = 1e-2               # ZCA whitening: added to the covariance eigenvalues ([0, 1] pixel units)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
CACHE_FORMAT = 2             # bump when the cache layout changes
SYNTHETIC_SEED = 0           # one synthetic dataset for every run seed, so seeds are comparable
SUBSET_SEED = 0              # likewise for --limit-train / --limit-test subsets
CIFAR10_HELP = ("put cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) into {root}/, "
                "or use --data-dir DIR with DIR/{{train,test}}/<class>/*.png, or --dataset synthetic")
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


@dataclass
class Data:
    train_x: object          # (N, C, H, W) uint8 images, or bow.SparseRows
    train_y: torch.Tensor    # (N,) int64
    test_x: object
    test_y: torch.Tensor
    classes: list
    source: str              # where the samples came from, for the run record
    mean: tuple = None       # per-channel statistics of the training split, in [0, 1] pixel units
    std: tuple = None
    val_x: object = None     # the validation split held out of the training set (--val-split), or None
    val_y: torch.Tensor = None

    def to(self, device):
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return replace(self, train_x=move(self.train_x), train_y=move(self.train_y), test_x=move(self.test_x),
                       test_y=move(self.test_y), val_x=move(self.val_x), val_y=move(self.val_y))

    @property
    def sample_shape(self):
        return tuple(self.train_x.shape[1:])


@dataclass(frozen=True)
class DatasetSpec:
    load: object             # load(root: Path, cache_dir: Path) -> Data
    kind: str                # "image" or "bow"
    describe: str
    sizes: tuple             # (train, test) samples of the full dataset, for projected run times


# ---------------------------------------------------------------- loading

def load(dataset, data_dir=None, data_root="input/data", limit_train=None, limit_val=None, synthetic=None,
         val_split=None):
    """The chosen dataset on the CPU, optionally cut to fixed random subsets, with a validation split
    held out of the training set. `synthetic` makes the workload's stand-in when dataset ==
    'synthetic' (default: CIFAR-shaped images). limit_val limits the test split."""
    root = Path(data_root)
    if data_dir is not None:
        data = load_image_folder(Path(data_dir), root / "cache")
    elif dataset == "synthetic":
        data = (synthetic or make_synthetic)()
    elif dataset in DATASETS:
        data = DATASETS[dataset].load(root, root / "cache")
    else:
        raise UserError(f"unknown dataset {dataset!r} (choose from synthetic, {', '.join(DATASETS)})")
    return limit(data, limit_train, limit_val, val_split)


def limit(data, limit_train, limit_val, val_split=None):
    """Fixed random subsets (the same for every run and seed). One fixed permutation of the training
    set: the validation split is its last n_val samples, --limit-train takes from its front, so the
    two never overlap. A fractional split is that fraction of the training samples used (of
    --limit-train where given); splits of different sizes are nested."""
    g = torch.Generator().manual_seed(SUBSET_SEED)
    order = torch.randperm(len(data.train_y), generator=g)
    test_idx = torch.randperm(len(data.test_y), generator=g)[:limit_val]
    n_val = val_count(val_split, min(limit_train or len(order), len(order)), len(order))
    pool, val_idx = order[:len(order) - n_val], order[len(order) - n_val:]
    train_idx = pool[:limit_train]
    held_out = dict(val_x=data.train_x[val_idx], val_y=data.train_y[val_idx]) if n_val else {}
    return replace(data, train_x=data.train_x[train_idx], train_y=data.train_y[train_idx],
                   test_x=data.test_x[test_idx], test_y=data.test_y[test_idx], **held_out)


def val_count(val_split, n_used, n_train):
    """--val-split as a number of samples: N, or a fraction (0.1 = 10%) of the n_used training samples."""
    if not val_split:
        return 0
    n = int(val_split) if val_split >= 1 else round(val_split * n_used)
    if not 0 < n < n_train:
        raise UserError(f"--val-split {val_split:g}: {n} of the {n_train} training samples; hold out at least "
                        "one and keep at least one")
    return n


def channel_stats(images, chunk=5000):
    """Per-channel mean and std of uint8 (N, C, H, W) images in [0, 1] units, in float64 chunks."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].double() / 255
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def with_measured_stats(data):
    return replace(data, **dict(zip(("mean", "std"), channel_stats(data.train_x))))


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
    return Data(train_x, train_y, test_x, test_y, list(train.classes), f"cifar10:{root}", CIFAR10_MEAN, CIFAR10_STD)


def load_mnist_like(name, mean, std, root, cache_dir):
    """MNIST or Fashion-MNIST through torchvision, which checks the md5 of the four official files
    in root/<name>/raw/ and downloads only what is missing there."""
    from torchvision import datasets as tv

    raw = root / name / "raw"
    try:
        train, test = (getattr(tv, name)(str(root), train=split, download=True) for split in (True, False))
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        reason = str(err).splitlines()[0][:120] if str(err) else err.__class__.__name__
        raise UserError(f"{name} is missing or corrupt in {raw} and could not be downloaded ({reason}): "
                        f"put the four official files ({', '.join(MNIST_FILES)}) into {raw}/") from None
    return Data(train.data[:, None].contiguous(), train.targets, test.data[:, None].contiguous(), test.targets,
                list(train.classes), f"{name.lower()}:{root}", mean, std)


def load_imdb(root, cache_dir):

    train_x, train_y, test_x, test_y, _, source = bow.load_imdb(root, cache_dir)
    return Data(train_x, train_y, test_x, test_y, ["neg", "pos"], source)


def make_synthetic_bow(n_train=2000, n_test=500):

    train_x, train_y, test_x, test_y, _, source = bow.make_synthetic_bow(n_train, n_test)
    return Data(train_x, train_y, test_x, test_y, ["neg", "pos"], source)


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
    # Your own images get their own statistics, measured once on the training split and cached.
    return with_measured_stats(Data(train_x, train_y, test_x, test_y, files["classes"], f"image-folder:{root.resolve()}"))


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
            try:
                st = path.stat()
            except OSError as err:     # a dangling symlink, a file removed while scanning
                raise UserError(f"cannot read image {path}: {err.strerror or err}") from None
            h.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def read_cache(path):
    """The cached Data, or None if absent; a damaged cache is reported and rebuilt."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, weights_only=True)
        assert blob["format"] == CACHE_FORMAT
        data = Data(*(blob[k] for k in ("train_x", "train_y", "test_x", "test_y", "classes", "source", "mean", "std")))
        assert data.train_x.dtype == torch.uint8 and len(data.train_x) == len(data.train_y)
        assert data.test_x.dtype == torch.uint8 and len(data.test_x) == len(data.test_y)
        return data
    except Exception as err:  # any damage at all means: rebuild from the images
        print(f"warning: data cache {path} is corrupt ({err.__class__.__name__}); rebuilding it from the source")
        return None


def write_cache(data, path):

    blob = dict(vars(data), format=CACHE_FORMAT)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.atomic_write(path, lambda tmp: torch.save(blob, tmp))
    except OSError as err:  # a read-only data root should not stop training
        print(f"warning: could not write data cache {path} ({err}); images will be decoded again next time")


def make_synthetic(n_train=10000, n_test=2000, num_classes=10, shape=(3, 32, 32), seed=SYNTHETIC_SEED):
    """uint8 images of the given (C, H, W): a smooth layout per class plus strong noise and a random
    brightness shift, so a model learns it over a few epochs but not in one step. Its statistics
    are measured, as for any dataset that is not one of the named ones."""
    g = torch.Generator().manual_seed(seed)
    channels, size = shape[0], shape[1:]
    layouts = F.interpolate(torch.rand(num_classes, channels, 4, 4, generator=g), size=size, mode="bilinear")

    def sample(n, chunk=5000):
        y = torch.randint(num_classes, (n,), generator=g)
        shift = 0.3 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
        x = torch.empty(n, *shape, dtype=torch.uint8)
        for s in range(0, n, chunk):     # in chunks: no float copy of the whole set (2 GB at CIFAR's size)
            pixels = 0.5 * layouts[y[s:s + chunk]] + 0.25 + shift[s:s + chunk]
            pixels += 0.35 * torch.randn(len(pixels), *shape, generator=g)
            x[s:s + chunk] = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
        return x, y

    (train_x, train_y), (test_x, test_y) = sample(n_train), sample(n_test)
    classes = [f"class{i}" for i in range(num_classes)]
    return with_measured_stats(Data(train_x, train_y, test_x, test_y, classes, f"synthetic:seed{seed}"))


AIRFOIL_FILE = "airfoil_self_noise.dat"
AIRFOIL_SHA1 = "76e5be1548fd8222e5074cf0faae75edff8cf93f"     # what D2L's data hub checks
AIRFOIL_URL = "https://archive.ics.uci.edu/dataset/291/airfoil+self+noise"
AIRFOIL_ROWS = 1500          # D2L keeps the first 1,500 of the 1,503 rows


def load_airfoil(root, cache_dir):
    """The NASA airfoil self-noise data as D2L's get_data_ch11 reads it: every column standardised
    over all 1,503 rows (numpy's std, ddof 0), the first 1,500 rows kept, the first five columns the
    inputs and the sound pressure level the target. D2L trains and evaluates on those same rows:
    the test split here is they too, so the test loss is D2L's reported loss."""
    path = Path(root) / AIRFOIL_FILE
    if not path.is_file():
        raise UserError(f"{AIRFOIL_FILE} not found: put it ({AIRFOIL_URL}) into {root}/, or use --dataset synthetic")
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    if digest != AIRFOIL_SHA1:
        raise UserError(f"{path} is not D2L's airfoil file (sha1 {digest[:12]}, expected {AIRFOIL_SHA1[:12]})")
    table = np.genfromtxt(path, delimiter="\t")
    if table.ndim != 2 or table.shape[1] != 6 or not np.isfinite(table).all():
        raise UserError(f"{path}: expected rows of 6 tab-separated numbers")
    return airfoil_data(table, f"airfoil:{path}")


def airfoil_data(table, source):
    table = (table - table.mean(axis=0)) / table.std(axis=0)
    x = torch.tensor(table[:AIRFOIL_ROWS, :-1], dtype=torch.float32)
    y = torch.tensor(table[:AIRFOIL_ROWS, -1], dtype=torch.float32)
    return Data(x, y, x.clone(), y.clone(), ["sound pressure level"], source)


def make_synthetic_airfoil(seed=SYNTHETIC_SEED):
    """The airfoil data's shape (1,503 rows: 5 inputs and a target, standardised; 1,500 kept), from
    a noisy linear model: offline, for tests and --dataset synthetic."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(AIRFOIL_ROWS + 3, 5))
    y = x @ np.array([-0.6, -0.4, -0.5, 0.2, -0.3]) + 0.5 * g.normal(size=len(x))
    return airfoil_data(np.column_stack([x, y]), f"synthetic-airfoil:seed{seed}")


DATASETS = {
    "cifar10": DatasetSpec(lambda root, cache: load_cifar10(root), "image", "CIFAR-10, 50k + 10k 32x32 colour images",
                           (50_000, 10_000)),
    "mnist": DatasetSpec(partial(load_mnist_like, "MNIST", (0.1307,), (0.3081,)), "image",
                         "MNIST, 60k + 10k 28x28 digits", (60_000, 10_000)),
    "fashion-mnist": DatasetSpec(partial(load_mnist_like, "FashionMNIST", (0.2860,), (0.3530,)), "image",
                                 "Fashion-MNIST, 60k + 10k 28x28 clothes", (60_000, 10_000)),
    "imdb": DatasetSpec(load_imdb, "bow", "IMDB reviews, 25k + 25k, 10,000-word binary bag of words",
                        (25_000, 25_000)),
    "airfoil": DatasetSpec(load_airfoil, "table", "NASA airfoil self-noise (D2L), 1,500 rows of 5 inputs and "
                                                  "a target, standardised; evaluated on the same rows", (1500, 1500)),
}


# ---------------------------------------------------------------- inputs and batches

@dataclass
class Inputs:
    """How a workload turns stored samples into model inputs, per batch, on the device:
    scale 'standardize' ((x - mean) / std per channel), 'unit' (x / 255, e.g. Bernoulli targets),
    'signed' (x / 127.5 - 1: mean 0.5 and std 0.5 per channel, the PyTorch CIFAR-10 tutorial's),
    'zca' (ZCA whitening fitted on the training split), or 'none' (already model inputs)."""
    scale: str = "none"
    augment: bool = False            # random crop from a zero-padded image, and horizontal flip
    channels_last: bool = False
    mean: torch.Tensor = None        # (1, C, 1, 1) in uint8 units, for 'standardize'
    std: torch.Tensor = None
    zca: torch.Tensor = None         # (D, D) whitening matrix, for 'zca'
    zca_mean: torch.Tensor = None    # (D,) in [0, 1] units

    def __call__(self, x):
        if self.scale == "standardize":
            x = (x.float() - self.mean) / self.std
        elif self.scale == "unit":
            x = x.float() / 255
        elif self.scale == "signed":
            x = x.float() / 127.5 - 1
        elif self.scale == "zca":
            x = ((x.flatten(1).float() / 255 - self.zca_mean) @ self.zca).view(x.shape)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x


def make_inputs(data, scale, augment=False, channels_last=False, zca_eps=ZCA_EPS):
    """The Inputs of a run, fitted on its training split where they need statistics."""
    device = data.train_y.device
    inputs = Inputs(scale, augment, channels_last)
    if scale == "standardize":
        inputs.mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1) * 255
        inputs.std = torch.tensor(data.std, device=device).view(1, -1, 1, 1) * 255
    elif scale == "zca":
        inputs.zca, inputs.zca_mean = zca_matrix(data.train_x, zca_eps)
    return inputs


def zca_matrix(images, eps, chunk=5000):
    """W = U diag(1/sqrt(lambda + eps)) U^T of the training pixels' covariance (section 6.3's
    whitening), accumulated in chunks so that no centred float copy of the dataset is held."""
    flat = images.flatten(1)
    mean = torch.zeros(flat.shape[1], dtype=torch.float64, device=flat.device)
    for start in range(0, len(flat), chunk):
        mean += flat[start:start + chunk].double().sum(0) / 255
    mean /= len(flat)
    cov = torch.zeros(flat.shape[1], flat.shape[1], dtype=torch.float64, device=flat.device)
    for start in range(0, len(flat), chunk):
        centred = flat[start:start + chunk].float() / 255 - mean.float()
        cov += (centred.T @ centred).double()
    evals, evecs = torch.linalg.eigh(cov / len(flat))
    w = evecs @ torch.diag((evals.clamp_min(0) + eps).rsqrt()) @ evecs.T
    return w.float(), mean.float()


def prepare(data, inputs, chunk=10000):
    """Without augmentation the inputs of every epoch are the same: compute them once for the whole
    dataset (a float copy; MNIST's is 188 MB) so that a step only gathers its rows."""
    if inputs.augment or inputs.scale == "none":
        return data, inputs

    def convert(x):                  # chunk by chunk into one buffer: no second float copy at the peak
        first = inputs(x[:chunk])
        layout = torch.channels_last if inputs.channels_last and first.dim() == 4 else torch.contiguous_format
        out = torch.empty((len(x), *first.shape[1:]), dtype=first.dtype, device=first.device, memory_format=layout)
        out[:chunk] = first
        for s in range(chunk, len(x), chunk):
            out[s:s + chunk] = inputs(x[s:s + chunk])
        return out
    done = Inputs("none", False, inputs.channels_last)
    val_x = None if data.val_x is None else convert(data.val_x)
    return replace(data, train_x=convert(data.train_x), test_x=convert(data.test_x), val_x=val_x), done


def normalize(x_uint8, channels_last=True, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """uint8 (N, C, H, W) -> float, standardised per channel (default: the tutorial's statistics)."""
    mean = torch.tensor(mean, device=x_uint8.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=x_uint8.device).view(1, -1, 1, 1) * 255
    return Inputs("standardize", False, channels_last, mean, std)(x_uint8)


def epoch_plan(n, generator, augment=True):
    """The epoch's random choices, drawn on the CPU from the seeded generator so that they
    are identical on every device: sample order, and with augmentation crop offsets and flips."""
    order = torch.randperm(n, generator=generator)
    if not augment:
        return order, None, None
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


def train_batches(data, inputs, batch_size, generator):
    """Yield the epoch's model inputs and labels (x, y); the last batch may be smaller."""
    device = data.train_y.device
    plan = epoch_plan(len(data.train_y), generator, inputs.augment)
    order, offsets, flips = (t if t is None else t.to(device) for t in plan)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x = take(data.train_x, idx)
        if inputs.augment:
            x = crop_flip(x, offsets[start:start + batch_size], flips[start:start + batch_size])
        yield inputs(x), data.train_y.index_select(0, idx)


def take(x, idx):
    """Rows idx of a tensor (index_select: 3x faster than x[idx] for MNIST batches) or of SparseRows."""
    return x.index_select(0, idx) if isinstance(x, torch.Tensor) else x[idx]


def eval_batches(x, y, batch_size, inputs):
    for start in range(0, len(y), batch_size):
        yield inputs(x[start:start + batch_size]), y[start:start + batch_size]


def batches_per_epoch(n, batch_size):
    return math.ceil(n / batch_size)
