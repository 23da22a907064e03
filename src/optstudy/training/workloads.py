"""The study's workloads: a dataset, a model, a loss and their defaults, chosen with --workload.

In the manner of AlgoPerf, a workload owns its data facts (which dataset, how its samples become
inputs, its synthetic stand-in), its model and loss, its default batch size, epochs and
learning-rate schedule, and the target that epochs-to-target counts to. Adding a workload is one
entry in WORKLOADS; adding a model or a dataset is one entry in model.MODELS or data.DATASETS.

Choices the paper leaves open are marked "our choice" here and in the README; each is a flag.
"""
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

import model as models
from optstudy.data import datasets

LR_SCHEDULES = ("constant", "inv-sqrt")
PREPROCESS = ("standardize", "zca", "signed")   # signed: the PyTorch CIFAR-10 tutorial's mean 0.5, std 0.5


@dataclass(frozen=True)
class Workload:
    describe: str
    paper: str                   # where it is in Kingma & Ba (2015), or where it comes from
    dataset: str                 # default dataset (a data.DATASETS name)
    model: str                   # a model.MODELS name
    synthetic: object            # () -> data.Data: the offline stand-in of the same shape
    objective: str = "classify"  # classify: cross-entropy and accuracy; elbo: negative ELBO in nats; regress: (y^ - y)^2 / 2
    scale: str = "standardize"   # how samples become inputs (data.Inputs.scale)
    augment: bool = False        # random crop (padding 4) and horizontal flip
    batch_size: int = 128
    epochs: int = 45
    lr_schedule: str = "constant"
    target: tuple = ("val_acc", 90.0)   # (metric, value) for epochs-to-target
    weight_decay: float = None   # replaces the optimizer's default weight decay; None keeps it
    eval_batch_size: int = 1000  # evaluation has no backward pass: large batches, within the 2 GB budget
    datasets: tuple = ()         # other datasets of the same shape it accepts
    image_folders: bool = False  # accepts --data-dir (an image folder of the same shape)

    @property
    def has_accuracy(self):
        return self.objective == "classify"


CIFAR = partial(datasets.make_synthetic, shape=(3, 32, 32))
MNIST = partial(datasets.make_synthetic, n_train=6000, n_test=1000, shape=(1, 28, 28))

WORKLOADS = {
    "cifar10-cnn": Workload(
        "c64-c64-c128-1000 CNN on CIFAR-10, the tutorial's settings", "section 6.3, Fig. 3",
        "cifar10", "adam-cnn", CIFAR, augment=True, target=("val_acc", 70.0), image_folders=True),
    "mnist-logreg": Workload(
        "multinomial logistic regression on MNIST's 784 pixels, L2 1e-4 (our choice)", "section 6.1, Fig. 1 left",
        "mnist", "logreg", MNIST, lr_schedule="inv-sqrt", target=("val_acc", 92.0), weight_decay=1e-4,
        datasets=("fashion-mnist",)),
    "imdb-bow-logreg": Workload(
        "logistic regression on 10,000-word IMDB bags of words, 50% feature dropout, L2 1e-4 (our choice)",
        "section 6.1, Fig. 1 right", "imdb", "bow-logreg", datasets.make_synthetic_bow, scale="none",
        lr_schedule="inv-sqrt", target=("val_acc", 85.0), weight_decay=1e-4),
    "mnist-mlp": Workload(
        "784-1000-1000-10 ReLU MLP on MNIST, dropout 0.5 (--dropout none --weight-decay 1e-4: deterministic)",
        "section 6.2, Fig. 2", "mnist", "mlp", MNIST, epochs=200, target=("val_acc", 98.0), weight_decay=0.0,
        datasets=("fashion-mnist",)),
    "mnist-vae": Workload(
        "VAE on MNIST: 500 softplus, 50-d latent, Bernoulli decoder; loss = negative ELBO (nats)",
        "section 6.4, Fig. 4", "mnist", "vae", MNIST, objective="elbo", scale="unit", batch_size=100, epochs=100,
        target=("val_loss", 120.0), weight_decay=0.0, datasets=("fashion-mnist",)),
    "cifar10-tutorial-cnn": Workload(
        "the PyTorch CIFAR-10 tutorial's CNN (conv 6-16, FC 120-84-10), no augmentation",
        "the net of the classic Adam-vs-SGD posts", "cifar10", "tutorial-cnn", CIFAR, target=("val_acc", 60.0),
        image_folders=True),
    "airfoil-linreg": Workload(
        "linear regression on D2L's airfoil self-noise data, squared loss / 2, minibatches of 10",
        "D2L's optimisation chapter (Adam from scratch)", "airfoil", "linreg", datasets.make_synthetic_airfoil,
        objective="regress", scale="none", batch_size=10, epochs=2, target=("val_loss", 0.25), weight_decay=0.0,
        eval_batch_size=1500),
    "cifar10-resnet18": Workload(
        "CIFAR ResNet-18 (3x3 stem, no max-pool), crop and flip, weight decay 5e-4",
        "beyond the paper", "cifar10", "resnet18", CIFAR, augment=True, target=("val_acc", 90.0),
        weight_decay=5e-4, image_folders=True, eval_batch_size=200),
}
DEFAULT = "cifar10-cnn"


def names():
    return list(WORKLOADS)


def table():
    """The registry as aligned text, for --list-workloads."""
    rows = [("name", "data", "model", "batch", "epochs", "schedule", "target", "stack", "paper")]
    for name, w in WORKLOADS.items():
        data = "/".join((w.dataset, *w.datasets)) + (", --data-dir" if w.image_folders else "")
        rows.append((name, data, w.model, str(w.batch_size), str(w.epochs), w.lr_schedule,
                     f"{w.target[0]} {w.target[1]:g}", "stacked" if models.stackable(w.model) else "one at a time",
                     w.paper))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths + [0])).rstrip() for r in rows]
    lines += ["", *(f"{name}: {w.describe}; model {models.MODELS[w.model].describe}" for name, w in WORKLOADS.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------- losses

# Each loss takes a model alone (outputs [B, ...], labels [B]) or a stacking.Stack of K members
# (outputs [K, B, ...], labels [K, B], or [B] shared by all), and returns (the mean loss: a scalar,
# or [K], one per member; the detached logits for accuracies(), or None).

def classify(model, x, y):
    """Mean cross-entropy: accuracy is counted from the logits once per epoch (accuracies()), not
    per step, where each extra op costs as much as a small model's layer. A stack's K means come
    from one cross-entropy over its K * B rows."""
    logits = model(x)
    if logits.dim() == 2:
        return F.cross_entropy(logits.float(), y), logits.detach()
    k, b, c = logits.shape
    y = y.expand(k, b) if y.dim() == 1 else y
    losses = F.cross_entropy(logits.float().reshape(k * b, c), y.reshape(-1), reduction="none").view(k, b).mean(1)
    return losses, logits.detach()


def negative_elbo(model, x, y):
    """Mean negative ELBO in nats: the VAE's forward returns it per sample."""
    return model(x).float().mean(-1), None


def half_squared_error(model, x, y):
    """Mean of (y^ - y)^2 / 2 over the minibatch: D2L's squared_loss, averaged."""
    return ((model(x).float() - y) ** 2 / 2).mean(-1), None


OBJECTIVES = {"classify": classify, "elbo": negative_elbo, "regress": half_squared_error}


def accuracies(outputs, labels, k):
    """Per member of k (1: a run alone): percent correct over the epoch's logits batches ([B, C] or
    [K, B, C]) and their labels ([B] or [K, B]); None each without outputs."""
    if not outputs or outputs[0] is None:
        return [None] * k
    correct = sum((out.argmax(-1) == y).sum(-1) for out, y in zip(outputs, labels))
    total = sum(y.shape[-1] for y in labels)
    return [100.0 * c / total for c in correct.view(-1).tolist()]


# ---------------------------------------------------------------- learning-rate schedules

def constant(epoch):
    return 1.0


def inv_sqrt(epoch):
    """Section 6.1: alpha_t = alpha / sqrt(t), t = 1, 2, ... the epoch (LambdaLR counts from 0)."""
    return 1.0 / (epoch + 1) ** 0.5


def make_schedule(name, optimizer):
    """A LambdaLR stepped once per epoch; its state_dict goes into the checkpoint, so a resumed
    run continues the schedule exactly."""
    factor = {"constant": constant, "inv-sqrt": inv_sqrt}[name]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
