"""The workload registry end to end: every workload trains on its synthetic stand-in, its
defaults land in the record, runs are reproducible, the inv-sqrt schedule and its resume are
exact, precision is resolved and recorded, and bad combinations are one line."""
import json
import math
import urllib.error

import joblib
import pytest
import torch

from optstudy.data import datasets as data
from optstudy.core import provenance
import train
from optstudy.training import workloads
from optstudy.core.cli import UserError, run_main
from conftest import assert_one_line_error, comparable, run_in_process, run_script

# Tiny runs without --batch-size, so that the workloads' default batch sizes show.
SMALL = ["--dataset", "synthetic", "--limit-train", "256", "--limit-val", "128", "--quiet", "--threads", "1"]
# cifar10-resnet18 costs ~10 ms an image here: 64 images in batches of 32.
EXTRA = {"cifar10-resnet18": ["--limit-train", "64", "--limit-val", "32", "--batch-size", "32"]}
MODEL = {"cifar10-cnn": "adam-cnn", "mnist-logreg": "logreg", "imdb-bow-logreg": "bow-logreg", "mnist-mlp": "mlp",
         "mnist-vae": "vae", "cifar10-tutorial-cnn": "tutorial-cnn", "cifar10-resnet18": "resnet18",
         "airfoil-linreg": "linreg"}


def train_workload(tmp_path, workload, *extra, name="run", epochs=1):
    """train.main in-process on a workload's tiny synthetic data -> (exit code, run dir)."""
    argv = [*SMALL, *EXTRA.get(workload, []), "--workload", workload, "--epochs", str(epochs),
            "--output-dir", str(tmp_path / "out"), "--run-name", name, "--data-root", str(tmp_path / "data"),
            *map(str, extra)]
    return run_main(train.main, argv), tmp_path / "out" / name


def read(run_dir):
    return json.loads((run_dir / "config.json").read_text()), joblib.load(run_dir / "metrics.pkl")


def test_the_registry_names_eight_workloads_each_with_a_model():
    assert set(workloads.names()) == set(MODEL)
    for name, w in workloads.WORKLOADS.items():
        assert w.model == MODEL[name] and w.lr_schedule in workloads.LR_SCHEDULES


def test_list_workloads_prints_them_all():
    proc = run_script("train.py", "--list-workloads")
    assert proc.returncode == 0, proc.stderr
    for name in MODEL:
        assert f"\n{name} " in proc.stdout, name


@pytest.mark.parametrize("workload", [pytest.param(w, marks=pytest.mark.slow) if w == "cifar10-resnet18" else w
                                      for w in MODEL])     # ResNet-18 (11M parameters): opt-in, 20 s
def test_every_workload_trains_on_its_synthetic_stand_in(tmp_path, workload):
    proc = run_in_process("train.py", *SMALL, *EXTRA.get(workload, []), "--workload", workload, "--epochs", "1",
                          "--output-dir", tmp_path, "--run-name", "r", "--data-root", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    config, metrics = read(tmp_path / "r")
    assert config["workload"]["name"] == workload and config["model"]["name"] == MODEL[workload]
    assert config["args"]["workload"] == workload and config["model"]["parameters"] > 0
    assert metrics["epoch"] == [0, 1] and metrics["status"] == "complete"
    w = workloads.WORKLOADS[workload]
    assert config["args"]["lr_schedule"] == w.lr_schedule
    if workload != "cifar10-resnet18":
        assert config["args"]["batch_size"] == w.batch_size
    if w.has_accuracy:
        assert len(metrics["train_acc"]) == len(metrics["test_acc"]) == 2
        assert all(0 <= a <= 100 for a in metrics["test_acc"])
    elif w.objective == "regress":
        assert "train_acc" not in metrics and "test_acc" not in metrics
        # standardised targets, w ~ N(0, 0.01^2), b = 0: (y^ - y)^2 / 2 starts near var(y) / 2 = 0.5
        assert 0.3 < metrics["test_loss"][0] < 0.7 and metrics["train_loss"][1] < metrics["train_loss"][0], metrics
    else:
        assert "train_acc" not in metrics and "test_acc" not in metrics
        # the negative ELBO in nats: 784 Bernoulli pixels at ~0.69 nats each before training
        assert 200 < metrics["test_loss"][0] < 1000 and 200 < metrics["train_loss"][0] < 1000, metrics
        assert all(loss > 0 for loss in metrics["train_loss"] + metrics["test_loss"])


def test_workload_defaults_and_weight_decay_land_in_the_record(tmp_path):
    code, run_dir = train_workload(tmp_path, "mnist-logreg", name="logreg")
    config, _ = read(run_dir)
    assert code == 0
    assert config["args"]["lr_schedule"] == "inv-sqrt" and config["args"]["batch_size"] == 128
    assert config["args"]["dataset"] == "synthetic" and config["args"]["dropout"] == "none"
    assert config["optimizer"]["hyperparameters"]["weight_decay"] == 1e-4      # the workload's, not adam's 5e-4
    assert config["data"]["sample_shape"] == [1, 28, 28]
    code, run_dir = train_workload(tmp_path, "mnist-logreg", "--weight-decay", "0.003", name="user_wd")
    assert code == 0 and read(run_dir)[0]["optimizer"]["hyperparameters"]["weight_decay"] == 0.003
    code, run_dir = train_workload(tmp_path, "mnist-vae", name="vae")
    config, _ = read(run_dir)
    assert code == 0 and config["args"]["batch_size"] == 100 and config["args"]["lr_schedule"] == "constant"
    assert config["optimizer"]["hyperparameters"]["weight_decay"] == 0.0
    assert config["workload"]["objective"] == "elbo"


@pytest.mark.parametrize("workload", ["mnist-logreg", "imdb-bow-logreg", "mnist-vae"])
def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path, workload):
    # imdb-bow-logreg draws feature dropout, mnist-vae its latent noise: both from the seed
    runs = [train_workload(tmp_path, workload, "--seed", seed, name=name)
            for seed, name in ((0, "a"), (0, "b"), (1, "c"))]
    assert [code for code, _ in runs] == [0, 0, 0]
    a, b, c = (read(run_dir)[1] for _, run_dir in runs)
    assert comparable(a) == comparable(b)
    assert a["iter_loss"] != c["iter_loss"] and a["test_loss"][1] != c["test_loss"][1]


def test_inv_sqrt_schedule_records_lr_over_sqrt_epoch(train_run):
    code, run_dir = train_run("--workload", "mnist-logreg", "--lr", "0.01", epochs=3)
    assert code == 0
    lr = joblib.load(run_dir / "metrics.pkl")["lr"]
    assert lr[0] == 0.01                                         # epoch 0: the initial lr
    assert lr[1:] == pytest.approx([0.01 / t ** 0.5 for t in (1, 2, 3)], rel=1e-12)


def test_inv_sqrt_resumed_mid_schedule_is_bit_identical(train_run):
    code, full = train_run("--workload", "mnist-logreg", name="full", epochs=3)
    assert code == 0
    assert train_run("--workload", "mnist-logreg", name="part", epochs=1)[0] == 0
    code, part = train_run("--workload", "mnist-logreg", "--resume", name="part", epochs=3)
    assert code == 0
    a, b = joblib.load(full / "metrics.pkl"), joblib.load(part / "metrics.pkl")
    assert b["epoch"] == [0, 1, 2, 3] and comparable(a) == comparable(b)


# ---------------------------------------------------------------- precision

CPU = torch.device("cpu")
AVX2, NATIVE = ["avx2"], ["avx2", "avx512f", "avx512_bf16"]


@pytest.mark.parametrize("flags, expected", [(AVX2, "fp32"), (NATIVE, "bf16")])
def test_auto_precision_is_bf16_only_where_native(monkeypatch, capsys, flags, expected):
    monkeypatch.setattr(provenance, "cpu_flags", lambda: flags)
    assert provenance.native_bf16(CPU) == (expected == "bf16")
    assert provenance.resolve_precision("auto", CPU) == expected
    assert provenance.resolve_precision("fp32", CPU) == "fp32"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("flags, warnings", [(AVX2, 1), (NATIVE, 0)])
def test_explicit_bf16_warns_once_without_native_support(monkeypatch, capsys, flags, warnings):
    monkeypatch.setattr(provenance, "cpu_flags", lambda: flags)
    assert provenance.resolve_precision("bf16", CPU) == "bf16"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == warnings and all(line.startswith("warning: --precision bf16") for line in err)


def test_bf16_run_warns_once_here_and_records_the_precision(tmp_path):
    proc = run_script("train.py", *SMALL, "--workload", "mnist-logreg", "--precision", "bf16", "--epochs", "1",
                      "--output-dir", tmp_path, "--run-name", "bf16", "--data-root", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    native = provenance.native_bf16(CPU)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == (0 if native else 1), proc.stderr
    config, metrics = read(tmp_path / "bf16")
    assert config["precision"] == {"requested": "bf16", "used": "bf16", "native_bf16": native}
    assert metrics["epoch"] == [0, 1] and all(math.isfinite(v) for v in metrics["train_loss"] + metrics["test_loss"])
    cpu = config["device"]["cpu"]
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability() and cpu["flags"] == provenance.cpu_flags()


def test_auto_precision_run_records_what_it_used(tmp_path, capsys):
    code, run_dir = train_workload(tmp_path, "mnist-logreg", "--precision", "auto")
    assert code == 0 and "warning" not in capsys.readouterr().err
    native = provenance.native_bf16(CPU)
    assert read(run_dir)[0]["precision"] == {"requested": "auto", "used": "bf16" if native else "fp32",
                                             "native_bf16": native}


def activation_dtypes(tmp_path, monkeypatch, precision, flags=None):
    """The dtypes of every Linear layer's output in the forwards of a real training step (model in
    train mode, not evaluation) of a tiny MLP run -> (those dtypes, the precision its record says)."""
    if flags is not None:
        monkeypatch.setattr(provenance, "cpu_flags", lambda: flags)
    seen = set()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and module.training and torch.is_grad_enabled():
            seen.add(output.dtype)
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        code, run_dir = train_workload(tmp_path, "mnist-mlp", "--precision", precision, "--limit-train", "128",
                                       "--batch-size", "64")
    finally:
        handle.remove()
    assert code == 0
    return seen, read(run_dir)[0]["precision"]["used"]


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_training_forward_runs_in_the_precision_asked_for(tmp_path, monkeypatch, capsys, precision, dtype):
    """Not only the record: the layers' activations in the training step are bf16 under --precision
    bf16 (autocast), fp32 otherwise."""
    seen, used = activation_dtypes(tmp_path, monkeypatch, precision)
    assert seen == {dtype} and used == precision


@pytest.mark.parametrize("flags, dtype", [(AVX2, torch.float32), (NATIVE, torch.bfloat16)])
def test_auto_precision_runs_bf16_only_where_native_and_the_record_says_what_ran(tmp_path, monkeypatch, capsys,
                                                                                  flags, dtype):
    seen, used = activation_dtypes(tmp_path, monkeypatch, "auto", flags)
    assert seen == {dtype} and used == {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]


# ---------------------------------------------------------------- data

def test_zca_whitens_the_training_inputs():
    d = data.make_synthetic(n_train=2000, n_test=10, shape=(3, 8, 8))
    inputs = data.make_inputs(d, "zca", zca_eps=1e-5)
    x = inputs(d.train_x).flatten(1).double()
    assert x.shape == (2000, 192) and x.mean(0).abs().max() < 1e-3
    cov = x.T @ x / len(x)
    assert (cov - torch.eye(192, dtype=torch.float64)).abs().max() < 0.01
    # and it is a whitening, not a rescaling: the raw pixels are strongly correlated
    raw = (d.train_x.flatten(1).double() / 255)
    raw_corr = torch.corrcoef(raw.T)
    assert (raw_corr - torch.eye(192, dtype=torch.float64)).abs().max() > 0.2


def test_prepare_precomputes_inputs_only_without_augmentation():
    d = data.make_synthetic(n_train=50, n_test=20, shape=(3, 8, 8))
    plain = data.make_inputs(d, "standardize")
    done, identity = data.prepare(d, plain)
    assert identity.scale == "none" and done.train_x.dtype == torch.float32
    assert torch.allclose(done.train_x, plain(d.train_x)) and torch.allclose(done.test_x, plain(d.test_x))
    assert torch.equal(identity(done.train_x[:3]), done.train_x[:3])
    augmented = data.make_inputs(d, "standardize", augment=True)
    same, same_inputs = data.prepare(d, augmented)
    assert same is d and same_inputs is augmented and same.train_x.dtype == torch.uint8


def test_channel_stats_match_torch_std_mean():
    d = data.make_synthetic(n_train=300, n_test=10, shape=(3, 8, 8))
    mean, std = data.channel_stats(d.train_x, chunk=7)            # several chunks and a ragged last one
    s, m = torch.std_mean(d.train_x.double() / 255, dim=(0, 2, 3), correction=0)
    assert mean == pytest.approx(m.tolist(), abs=1e-4) and std == pytest.approx(s.tolist(), abs=1e-4)


def write_idx(raw, prefix, images, labels):
    import struct
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">4i", 0x803, len(images), 28, 28)
                                                      + images.numpy().tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">2i", 0x801, len(labels))
                                                      + labels.numpy().astype("uint8").tobytes())


def test_mnist_reads_the_official_idx_files(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(12) % 10
    write_idx(tmp_path / "MNIST" / "raw", "train", images[:8], labels[:8])
    write_idx(tmp_path / "MNIST" / "raw", "t10k", images[8:], labels[8:])
    d = data.DATASETS["mnist"].load(tmp_path, tmp_path / "cache")
    assert d.train_x.shape == (8, 1, 28, 28) and d.test_x.shape == (4, 1, 28, 28)
    assert d.train_x.dtype == d.test_x.dtype == torch.uint8
    assert torch.equal(d.train_x[:, 0], images[:8]) and torch.equal(d.test_x[:, 0], images[8:])
    assert d.train_y.tolist() == labels[:8].tolist() and d.test_y.tolist() == labels[8:].tolist()
    assert len(d.classes) == 10 and d.mean == (0.1307,) and d.std == (0.3081,)
    assert d.source == f"mnist:{tmp_path}"


def test_offline_without_mnist_names_the_files_and_the_folder(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as mnist

    def offline(*a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(mnist, "download_and_extract_archive", offline)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(UserError) as err:
        data.DATASETS["mnist"].load(tmp_path, tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message and str(raw) in message
    for name in data.MNIST_FILES:
        assert name in message


# ---------------------------------------------------------------- bad input

def test_images_that_do_not_fit_the_model_are_one_line(tmp_path):
    from test_data import write_tree

    root = write_tree(tmp_path / "tree")                         # 8x8 images: too small for the CNN
    proc = run_script("train.py", "--workload", "cifar10-cnn", "--data-dir", root, "--batch-size", "2",
                      "--epochs", "1", "--quiet", "--threads", "1", "--output-dir", tmp_path / "o",
                      "--data-root", tmp_path / "data")
    assert_one_line_error(proc, "the samples (3x8x8) do not fit this workload's model")
    assert not any((tmp_path / "o").rglob("metrics.pkl"))


@pytest.mark.parametrize("args, fragment", [
    (["--workload", "mnist-logreg", "--dropout", "tutorial"],
     "--dropout tutorial: workload mnist-logreg (model logreg) takes none"),
    (["--workload", "mnist-logreg", "--dataset", "cifar10"],
     "--dataset cifar10: workload mnist-logreg takes mnist, fashion-mnist, synthetic"),
    (["--workload", "mnist-logreg", "--data-dir", "X"],
     "--data-dir: workload mnist-logreg does not read image folders"),
    (["--workload", "imdb-bow-logreg", "--preprocess", "zca"],
     "--preprocess zca: workload imdb-bow-logreg has no standardised image inputs"),
    (["--dropout-rate", "1.5"], "--dropout-rate 1.5 must be in [0, 1)"),
])
def test_bad_workload_combinations_are_one_line(tmp_path, args, fragment):
    proc = run_in_process("train.py", "--epochs", "1", "--output-dir", tmp_path, "--data-root", tmp_path / "data", *args)
    assert_one_line_error(proc, fragment)
    assert not any(tmp_path.rglob("config.json"))
