"""Opt-in checks on real data (python -m pytest -m slow); each skips when its data is absent.

CIFAR-10 and IMDB: conftest's cifar10_dir and imdb_root (an environment variable, input/data, or
the shared archive extracted into a temporary folder). MNIST: the four official .gz files from
$MNIST_DIR, input/data/MNIST/raw or the shared copy beside the project, copied into a temporary data
root (about a minute per run on 2 CPU cores). Each skips before any work where its data is absent."""
import os
import shutil
from pathlib import Path

import pytest

from optstudy.data import datasets as data
from optstudy.records import store as records
from conftest import REPO, SHARED_DATA, run_script

pytestmark = pytest.mark.slow

MNIST_SOURCES = [Path(p) for p in (os.environ.get("MNIST_DIR"), REPO / "input" / "data" / "MNIST" / "raw",
                                    SHARED_DATA / "mnist") if p]
MNIST_SOURCE = next((d for d in MNIST_SOURCES if all((d / f).is_file() for f in data.MNIST_FILES)), None)
needs_mnist = pytest.mark.skipif(MNIST_SOURCE is None,
                                 reason="no MNIST .gz files in " + " or ".join(map(str, MNIST_SOURCES)))


def test_one_epoch_of_adam_passes_35_percent(cifar10_dir, tmp_path):
    proc = run_script("train.py", "--optimizer", "adam", "--data-dir", cifar10_dir, "--epochs", "1",
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


def test_one_epoch_of_imdb_bow_logreg_passes_82_percent(imdb_root, tmp_path):
    metrics = one_epoch("imdb-bow-logreg", imdb_root, tmp_path)
    assert metrics["test_acc"][1] > 82.0, metrics["test_acc"]
