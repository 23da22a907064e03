"""Opt-in checks on real data (python -m pytest -m slow); each skips when its data is absent.

CIFAR-10: an image-folder copy from $CIFAR10_DIR, or input/data/cifar10-jpeg (about two minutes).
MNIST: the four official .gz files from input/data/MNIST/raw, or the shared copy beside the project,
copied into a temporary data root (about a minute per run on 2 CPU cores).
IMDB: the extracted reviews, found as tests/test_bow.py finds them."""
import os
import shutil
from pathlib import Path

import pytest

from optstudy.data import datasets as data
from optstudy.records import store as records
from conftest import REPO, run_script
from test_bow import SHARED as SHARED_IMDB
from test_bow import real_imdb_root

pytestmark = pytest.mark.slow

DATA = Path(os.environ.get("CIFAR10_DIR", REPO / "input" / "data" / "cifar10-jpeg"))
MNIST_SOURCES = [REPO / "input" / "data" / "MNIST" / "raw", REPO.parent / "shared" / "data" / "mnist"]
MNIST_SOURCE = next((d for d in MNIST_SOURCES if all((d / f).is_file() for f in data.MNIST_FILES)), None)
needs_mnist = pytest.mark.skipif(MNIST_SOURCE is None,
                                 reason="no MNIST .gz files in " + " or ".join(map(str, MNIST_SOURCES)))
HAS_IMDB = bool(os.environ.get("IMDB_DIR") or SHARED_IMDB.is_file() or (REPO / "input/data/aclImdb").is_dir())


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"no CIFAR-10 image folder at {DATA}")
def test_one_epoch_of_adam_passes_35_percent(tmp_path):
    proc = run_script("train.py", "--optimizer", "adam", "--data-dir", DATA, "--epochs", "1",
                      "--output-dir", tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    metrics = records.load_metrics(tmp_path / "adam_seed0")
    assert metrics["test_acc"][1] > 35.0, metrics["test_acc"]


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    """A data root holding only MNIST/raw/ with the four official .gz files."""
    root = tmp_path_factory.mktemp("mnist")
    (root / "MNIST" / "raw").mkdir(parents=True)
    for name in data.MNIST_FILES:
        shutil.copyfile(MNIST_SOURCE / name, root / "MNIST" / "raw" / name)
    return root


def one_epoch(workload, data_root, out):
    proc = run_script("train.py", "--workload", workload, "--optimizer", "adam", "--epochs", "1", "--quiet",
                      "--data-root", data_root, "--output-dir", out, "--run-name", workload, timeout=900)
    assert proc.returncode == 0, proc.stderr
    metrics = records.load_metrics(out / workload)
    print(f"{workload}: {metrics['test_loss']=} {metrics.get('test_acc')=} {metrics['seconds']=}")
    return metrics


@needs_mnist
def test_mnist_statistics_and_sizes(mnist_root):
    d = data.DATASETS["mnist"].load(mnist_root, mnist_root / "cache")
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    mean, std = data.channel_stats(d.train_x)
    print(f"MNIST train mean {mean}, std {std}")
    assert mean == pytest.approx((0.1307,), abs=5e-4) and std == pytest.approx((0.3081,), abs=5e-4)


@needs_mnist
@pytest.mark.parametrize("workload, key, check", [
    ("mnist-logreg", "test_acc", lambda v: v > 88.0),
    ("mnist-mlp", "test_acc", lambda v: v > 95.0),
    ("mnist-vae", "test_loss", lambda v: v < 150.0),          # nats
])
def test_one_epoch_on_mnist(mnist_root, tmp_path, workload, key, check):
    metrics = one_epoch(workload, mnist_root, tmp_path)
    assert check(metrics[key][1]), metrics[key]


@pytest.mark.skipif(not HAS_IMDB, reason="no IMDB reviews ($IMDB_DIR, input/data/aclImdb or the shared .tar.xz)")
def test_one_epoch_of_imdb_bow_logreg_passes_82_percent(tmp_path):
    metrics = one_epoch("imdb-bow-logreg", real_imdb_root(), tmp_path)
    assert metrics["test_acc"][1] > 82.0, metrics["test_acc"]
