import json

import joblib
import pytest

import train
from optstudy.core.cli import run_main
from conftest import TINY, assert_one_line_error, comparable, run_script


def test_two_epoch_run_writes_a_complete_record(train_run):
    code, run_dir = train_run(epochs=2)
    assert code == 0
    config = json.loads((run_dir / "config.json").read_text())
    metrics = joblib.load(run_dir / "metrics.pkl")
    assert metrics["epoch"] == [0, 1, 2] and metrics["status"] == "complete"
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds", "lr"):
        assert len(metrics[key]) == 3, key
    assert metrics["lr"] == [1e-3] * 3
    assert len(metrics["iter_loss"]) == 2 * metrics["iters_per_epoch"] == 2 * 4   # 256 / 64
    assert config["optimizer"]["hyperparameters"] == {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                                      "weight_decay": 5e-4}
    assert config["args"]["seed"] == 0 and config["args"]["epochs"] == 2
    assert config["device"]["type"] == "cpu"
    assert set(config["versions"]) >= {"torch", "torchvision", "python"}
    assert config["command"].startswith("python") and "--epochs 2" in config["command"]
    assert config["data"]["train_size"] == 256 and config["start_time"]
    assert (run_dir / "checkpoint.pt").exists()


def test_train_loss_is_the_sample_weighted_mean(train_run):
    # 256 samples in batches of 100: 100, 100, 56. The epoch loss weights each batch by its size.
    code, run_dir = train_run("--batch-size", "100", epochs=1)
    m = joblib.load(run_dir / "metrics.pkl")
    l1, l2, l3 = m["iter_loss"]
    assert m["train_loss"][1] == pytest.approx((100 * l1 + 100 * l2 + 56 * l3) / 256, rel=1e-6)
    assert m["train_loss"][1] != pytest.approx((l1 + l2 + l3) / 3, rel=1e-6)


def test_same_seed_same_numbers_other_seed_other_numbers(train_run):
    _, a = train_run(name="a")
    _, b = train_run(name="b")
    _, c = train_run("--seed", "1", name="c")
    ma, mb, mc = (joblib.load(d / "metrics.pkl") for d in (a, b, c))
    assert comparable(ma) == comparable(mb)
    assert ma["iter_loss"] != mc["iter_loss"]


def test_sgd_is_nesterov_without_weight_decay(train_run):
    code, run_dir = train_run("--optimizer", "sgd", epochs=1)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"]["hyperparameters"] == {"lr": 1e-3, "weight_decay": 0.0}
    assert config["optimizer"]["fixed"] == {"momentum": 0.9, "nesterov": True}


def test_the_curves_move_on_synthetic_data(train_run):
    code, run_dir = train_run("--limit-train", "1000", epochs=3)
    m = joblib.load(run_dir / "metrics.pkl")
    assert m["test_acc"][-1] > m["test_acc"][0] + 15
    assert m["train_loss"][-1] < m["train_loss"][1]


@pytest.mark.parametrize("args, fragment", [
    (["--optimizer", "adamm"], "unknown optimizer 'adamm'"),
    (["--dataset", "imagenet"], "--dataset imagenet: workload cifar10-cnn takes cifar10, synthetic"),
    (["--epochs", "0"], "--epochs: '0' is not a positive integer"),
    (["--batch-size", "-8"], "--batch-size: '-8' is not a positive integer"),
    (["--lr", "0"], "--lr: '0' is not a positive number"),
    (["--lr", "nan"], "--lr: 'nan' is not a positive number"),
    (["--weight-decay=-1e-4"], "--weight-decay: '-1e-4' is not a number >= 0"),
    (["--batch-size", "512"], "--batch-size 512 is larger than the 256 training samples"),
    (["--optimizer", "sgd", "--betas", "0.9", "0.99"], "--betas does not apply to optimizer 'sgd'"),
    (["--device", "tpu"], "--device 'tpu' is not a device"),
])
def test_bad_arguments_get_one_line_and_status_2(tmp_path, args, fragment):
    proc = run_script("train.py", *TINY, "--epochs", "1", "--output-dir", tmp_path, *args)
    assert_one_line_error(proc, fragment)
    assert not any(tmp_path.rglob("metrics.pkl"))


def test_offline_without_cifar10_says_where_to_put_it(tmp_path, monkeypatch, capsys):
    import urllib.error

    import torchvision.datasets.cifar as cifar

    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(cifar, "download_and_extract_archive", offline)
    code = run_main(train.main, ["--epochs", "1", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cifar-10-python.tar.gz" in err and "--data-dir" in err


def test_corrupt_cifar10_archive_says_delete_and_download_again(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b truncated")
    proc = run_script("train.py", "--epochs", "1", "--data-root", tmp_path, "--output-dir", tmp_path / "o")
    assert_one_line_error(proc, "corrupt or truncated", "delete it and download it again")


def test_existing_run_is_refused_then_overwritten_on_request(train_run, capsys):
    _, run_dir = train_run(epochs=1)
    before = (run_dir / "metrics.pkl").read_bytes()
    code, _ = train_run(epochs=1)
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert (run_dir / "metrics.pkl").read_bytes() == before
    code, _ = train_run("--overwrite", "--seed", "3", epochs=1)
    assert code == 0
    assert json.loads((run_dir / "config.json").read_text())["args"]["seed"] == 3


def test_list_optimizers_prints_the_registry():
    proc = run_script("train.py", "--list-optimizers")
    assert proc.returncode == 0
    for name in ("adam", "sgd", "adagrad", "rmsprop", "adadelta", "adamax", "paper-adam"):
        assert f"\n{name} " in proc.stdout
