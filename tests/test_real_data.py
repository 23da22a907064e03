"""Opt-in checks on real CIFAR-10 images (python -m pytest -m slow).

They read an image-folder copy of CIFAR-10 from $CIFAR10_DIR, or input/data/cifar10-jpeg, and
skip when neither exists. About two minutes each on 2 CPU cores."""
import os
from pathlib import Path

import pytest

import records
from conftest import REPO, run_script

DATA = Path(os.environ.get("CIFAR10_DIR", REPO / "input" / "data" / "cifar10-jpeg"))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "train").is_dir(), reason=f"no CIFAR-10 image folder at {DATA}")]


def test_one_epoch_of_adam_passes_35_percent(tmp_path):
    proc = run_script("train.py", "--optimizer", "adam", "--data-dir", DATA, "--epochs", "1",
                      "--output-dir", tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr
    metrics = records.load_metrics(tmp_path / "adam_seed0")
    assert metrics["val_acc"][1] > 35.0, metrics["val_acc"]
