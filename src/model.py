"""Every model of the study, in one registry: adding a model is one builder here.

    MODELS["adam-cnn"].build(input_shape=(3, 32, 32), num_classes=10, dropout="tutorial", p=0.5)

Each entry names the dropout placements it accepts (the first is its default) and whether its
first layer reads images, a flat vector, or a bag of words (bow.SparseRows). Models of the Adam
paper (Kingma & Ba, 2015, section 6):
  adam-cnn      section 6.3: c64-c64-c128-1000 (three 5x5 convs with padding 1, each ReLU and a 3x3
                stride-2 max-pool, a global average pool, a 1000-unit ReLU layer, a classifier).
                On 32x32 inputs the maps go 32 -> 30 -> 14 -> 12 -> 5 -> 3 -> 1.
  logreg        section 6.1: multinomial logistic regression on the flattened pixels.
  bow-logreg    section 6.1: logistic regression on a binary bag of words, optional feature dropout.
  mlp           section 6.2: 784-1000-1000-10 with ReLU, optional dropout on the hidden layers.
  vae           section 6.4: the VAE of Kingma & Welling (2014), one hidden layer of 500 softplus
                units in the encoder and in the decoder, a 50-dimensional Gaussian latent, a
                Bernoulli decoder.
and two beyond it: the small CNN of the PyTorch CIFAR-10 tutorial, and the CIFAR ResNet-18.

A model is stackable (K copies train as one, training/stacking.py's Stack) when its class defines
stacked_forward(stack, x), its forward for K members at once. Most write their forward once, as
forward_with(ops, x) (class Layered): the solo forward runs it with SOLO, which calls each layer
as itself (the torch ops of a plain forward); the Stack runs it with its own ops. The bag of
words, whose K members' rows index one table, writes its stacked form beside its solo forward.

About the classic tutorial's CNN: it applied nn.Dropout2d to the 2-D (batch, features) output of
the FC layer. With the pinned torch that warns that the use is deprecated and then drops
elements, as nn.Dropout does (on a 1000x1000 tensor of ones: no row all zero, 50.1% zeros). We
use nn.Dropout there: the same behaviour, explicit, without the warning, and without depending on
a code path torch has announced it will remove. The tutorial's F.adaptive_avg_pool2d has no
deterministic CUDA backward; a mean over H and W computes the same thing deterministically.
"""
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optstudy.data import bow

DROPOUT_PLACEMENTS = ("tutorial", "paper", "none")   # the CNN's; other models accept a subset


class AdamPaperCNN(nn.Module):
    """dropout='tutorial' (default): channel dropout after the conv1 block and dropout on FC.
    dropout='paper': dropout on the input and on FC, as section 6.3 describes.
    dropout='none': no dropout anywhere (for ablations, and the paper's Figure 3 'no dropout')."""

    def __init__(self, num_classes=10, dropout="tutorial", p=0.5, in_channels=3):
        super().__init__()
        if dropout not in DROPOUT_PLACEMENTS:
            raise ValueError(f"dropout must be one of {DROPOUT_PLACEMENTS}, got {dropout!r}")
        self.dropout_placement = dropout
        self.input_dropout = nn.Dropout(p) if dropout == "paper" else nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, 64, 5, padding=1)
        # After a conv, Dropout2d (whole channels) is the tutorial's choice and is valid on 4-D maps.
        self.conv1_dropout = nn.Dropout2d(p) if dropout == "tutorial" else nn.Identity()
        self.conv2 = nn.Conv2d(64, 64, 5, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 5, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.fc1 = nn.Linear(128, 1000)
        self.fc_dropout = nn.Dropout(p) if dropout != "none" else nn.Identity()
        self.fc2 = nn.Linear(1000, num_classes)

    def forward(self, x):
        x = self.input_dropout(x)
        x = self.conv1_dropout(self.pool(torch.relu(self.conv1(x))))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        x = x.mean(dim=(2, 3))  # global average pool, deterministic backward on CUDA
        x = self.fc_dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)


class TutorialCNN(nn.Module):
    """The PyTorch CIFAR-10 tutorial's net: conv 6 and 16 (5x5, each ReLU and 2x2 max-pool),
    then FC 120-84-classes."""

    def __init__(self, num_classes=10, in_channels=3, size=32):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = ((size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs as today's optimizer papers use it: a 3x3 stride-1 stem and no
    max-pool, four stages of two basic blocks (64, 128, 256, 512 channels), global average pool."""

    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class SoloOps:
    """The ops of a model run alone: each layer is called as itself, noise comes from the global
    stream. (A training.stacking.Stack provides the same two ops for K members at once.)"""

    @staticmethod
    def layer(module, h):
        return module(h)

    @staticmethod
    def randn(like):
        return torch.randn_like(like)


SOLO = SoloOps()


class Layered(nn.Module):
    """A model whose forward is written once, as forward_with(ops, x), against two ops:
    ops.layer(module, h) runs one of its submodules (a Linear, or a Sequential of Linear, ReLU,
    Softplus, Dropout and Identity) and ops.randn(like) draws noise shaped like a tensor. Alone it
    runs with SOLO on x [B, D]; stacked (stacked_forward) with the Stack's ops on x [B, D], shared by
    the K members, or [K, B, D], each member's own, giving [K, B, ...]."""

    def forward(self, x):
        return self.forward_with(SOLO, x.flatten(1))

    def stacked_forward(self, stack, x):
        return self.forward_with(stack, x)


class LogisticRegression(Layered):
    """Multinomial logistic regression on the flattened input (softmax over a linear map)."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward_with(self, ops, x):
        return ops.layer(self.linear, x)


class LinearRegression(nn.Module):
    """y = Xw + b, initialised as D2L's linear regression: w ~ N(0, 0.01^2), b = 0; one output."""

    def __init__(self, in_features):
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        nn.init.normal_(self.linear.weight, std=0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return self.linear(x.flatten(1)).squeeze(1)


class BowLogisticRegression(nn.Module):
    """Logistic regression on a binary bag of words, read sparse: x @ W for a 0/1 row x is the sum of
    W's rows at x's words, gathered and summed per review (BagOfWords), so the batch is never
    densified. That is faster here than F.embedding_bag, whose backward sorts.
    Dropout on the features (the paper's Figure 1, right) zeroes each present word with
    probability p and scales the rest by 1/(1-p), exactly as nn.Dropout on the dense row would."""

    def __init__(self, vocab_size, num_classes, p=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, num_classes))   # row w: word w's logits
        self.bias = nn.Parameter(torch.empty(num_classes))
        bound = 1 / vocab_size ** 0.5                                      # nn.Linear's initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.p = p

    def forward(self, rows):
        scale = None
        if self.training and self.p > 0:
            draws = torch.rand(1, len(rows.cols), device=rows.cols.device)
            scale = dropout_scale(draws, self.p, self.weight.shape[1])
        return BagOfWords.apply(rows.cols, rows.row_ids(), len(rows), True, scale,
                                self.weight.unsqueeze(0), self.bias.unsqueeze(0))[0]

    def stacked_forward(self, stack, x):
        """This forward for the K members of a Stack (self is its first), on shared rows or
        bow.StackedRows -> [K, B, C]: each member's words are summed, and its dropout drawn from its
        own stream, as in its solo run. Dropout follows the stack's training mode (its members'
        modules are not its children)."""
        (weight, bias), views = stack.tensors("weight", "bias")
        k = len(stack)
        shared = not isinstance(x, bow.StackedRows)
        rows = x if shared else x.rows
        per_member = len(rows) if shared else len(rows) // k
        row_ids = rows.row_ids()
        if shared:
            cols, counts = rows.cols, [len(rows.cols)] * k
        else:                                  # word w of member m is row m * V + w of the [K * V, C] weights
            nonzeros = rows.offsets[per_member::per_member] - rows.offsets[:-1:per_member]     # per member
            first_row = torch.arange(0, k * weight.shape[1], weight.shape[1], device=rows.cols.device)
            cols = rows.cols + torch.repeat_interleave(first_row, nonzeros)   # an int64 division costs 5x this
            counts = nonzeros.tolist()
        scale = None
        if stack.training and self.p > 0:
            draws = stack.draws(counts, cols.device)
            scale = dropout_scale(draws.view(k if shared else 1, -1), self.p, weight.shape[2])
        return BagOfWords.apply(cols, row_ids, per_member, shared, scale, weight, bias, *views)


class BagOfWords(torch.autograd.Function):
    """logits[k, r] = the sum of W[k]'s rows at row r's words (each times its dropout scale) + b[k]
    for K stacked weights W [K, V, C] (a solo model: K = 1; stacking.Stack: K members). Shared rows
    (one minibatch for every member) gather each word's weights of every member as one row of a
    word-major copy [V, K*C] (a copy of W per step is cheaper than K*C-narrow gathers); per-member
    rows (member after member, `rows` each) gather through flat indices member * V + word. Each logit
    sums its words in the order of the rows, from zero, as index_add does: every member's numbers
    are those of its solo run, bit for bit. The weight views of stacking.Stack come last, so that
    autograd fills each member's own .grad from the slices of one batched gradient."""

    @staticmethod
    def forward(ctx, cols, row_ids, rows, shared, scale, weight, bias, *views):
        k, vocab, classes = weight.shape
        if not shared:
            table = weight.reshape(k * vocab, classes)
        elif k == 1:
            table = weight.view(vocab, classes)
        else:
            table = swap01(weight).view(vocab, k * classes)
        logits = torch.zeros(rows if shared else k * rows, table.shape[1], dtype=table.dtype, device=table.device)
        sum_rows(logits, row_ids, table, cols, scale)
        logits = logits.view(rows, k, classes).transpose(0, 1) if shared else logits.view(k, rows, classes)
        ctx.save_for_backward(cols, row_ids, scale)
        ctx.shared, ctx.shape = shared, weight.shape
        return logits + bias.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad):
        cols, row_ids, scale = ctx.saved_tensors
        k, vocab, classes = ctx.shape
        rows = grad.transpose(0, 1).reshape(-1, k * classes) if ctx.shared else grad.reshape(-1, classes)
        grad_table = torch.zeros(vocab if ctx.shared else k * vocab, rows.shape[1],
                                 dtype=grad.dtype, device=grad.device)
        sum_rows(grad_table, cols, rows.contiguous(), row_ids, scale)
        if not ctx.shared:
            grad_weight = grad_table.view(k, vocab, classes)
        elif k == 1:
            grad_weight = grad_table.view(1, vocab, classes)
        else:
            grad_weight = swap01(grad_table.view(vocab, k, classes))
        grad_bias = grad.sum(1)
        if ctx.needs_input_grad[5]:
            return None, None, None, None, None, grad_weight, grad_bias
        return (None, None, None, None, None, None, None, *grad_weight.unbind(0), *grad_bias.unbind(0))


BLOCK_BYTES = 1 << 21     # a block of gathered rows that stays cached (the EPYC here: L2 512 KB a core, L3 32 MB)


def sum_rows(out, out_index, table, index, scale=None):
    """out[out_index[i]] += table[index[i]] * scale[i] for i in order: the gathered rows, scaled in
    place, summed into out as index_add sums them (the same additions in the same order), block by
    block of about BLOCK_BYTES, so that the rows are summed while still cached rather than written
    out whole and read back (at 64 members, 9 MB for each of the three passes). Forward and
    backward of 64 members on one real IMDB minibatch (17k words, 50% dropout): 1.2-1.3x faster than
    one gather, one scaling and one sum; 16 members, and per-member orders, about the same (AMD EPYC,
    AVX2, one thread; interleaved, medians of 10)."""
    step = max(256, BLOCK_BYTES // (table.shape[1] * table.element_size()))
    split = (lambda t: (t,)) if len(index) <= step else (lambda t: t.split(step))
    scales = split(scale) if scale is not None else itertools.repeat(None)
    for block, out_block, scale_block in zip(split(index), split(out_index), scales):
        rows = gather_rows(table, block)
        if scale_block is not None:
            rows.mul_(scale_block)
        add_rows_(out, out_block, rows)
    return out


def is_pairs(t):
    """A contiguous [n, 2] float tensor on the CPU: its rows can move as single complex numbers."""
    return (t.device.type == "cpu" and t.dim() == 2 and t.shape[1] == 2 and t.is_contiguous()
            and t.dtype in (torch.float32, torch.float64))


def gather_rows(table, index):
    """table.index_select(0, index). Rows of two floats (the binary classes) move as one complex
    element each: 0.57 ms against 2.06 ms for 272k rows (AMD EPYC, AVX2, one thread)."""
    if is_pairs(table):
        return torch.view_as_real(torch.view_as_complex(table).index_select(0, index))
    return table.index_select(0, index)


def add_rows_(out, index, source):
    """out.index_add_(0, index, source): output row i adds the source rows indexed i, in order.
    Rows of two floats add as complex numbers, whose real and imaginary parts are the same two
    float additions: the same bits, 1.0 ms against 3.5 ms for 272k rows (AMD EPYC, AVX2)."""
    if is_pairs(source) and is_pairs(out):
        torch.view_as_complex(out).index_add_(0, index, torch.view_as_complex(source))
    else:
        out.index_add_(0, index, source)
    return out


def dropout_scale(draws, p, classes):
    """Each word's scale as nn.Dropout makes it, keep / (1 - p) with keep = draws >= p, for uniform
    draws [K, n] (member after member, as drawn) -> [n, K * C], laid out as the gathered words (a
    broadcast multiply over a last dimension of 2 costs several times a plain one). Where C values
    are 8 bytes (the binary classes), numpy compares the draws in their order (in float32, as
    torch does) and writes each (scale, scale) as one int64 from the transposed one-byte flags:
    for 64 members' 17k words about 2 ms against 4.6 ms for torch's compare, transpose and a
    per-pair lookup, and 1.2x faster than comparing the transposed floats (AMD EPYC, AVX2, one
    thread). The same bits either way."""
    k, n = draws.shape
    value = torch.ones(1, dtype=torch.bool, device=draws.device) / (1 - p)    # divided as torch divides a mask
    if draws.device.type == "cpu" and draws.dtype == torch.float32 and classes * value.element_size() == 8:
        keep = np.greater_equal(draws.numpy(), np.float32(p))            # [K, n], read in order
        scales = np.empty((n, k), np.int64)
        np.multiply(keep.T, value.repeat(classes).view(torch.int64).item(), out=scales)
        return torch.from_numpy(scales).view(value.dtype).view(n, -1)
    return ((draws >= p).t() / (1 - p)).repeat_interleave(classes, dim=1)


def swap01(t):
    """[A, B, C] -> contiguous [B, A, C]. Where a row of C is 8 bytes (the binary classes in fp32)
    each row moves as one int64, and on the CPU numpy's transpose moves them: for [16, 10000, 2],
    0.08 ms against torch's 1.0 ms (AMD EPYC, AVX2, one thread). The same bits either way."""
    a, b, c = t.shape
    if not (t.is_contiguous() and c * t.element_size() == 8):
        return t.transpose(0, 1).contiguous()
    rows = t.view(torch.int64).view(a, b)
    if rows.device.type == "cpu":
        swapped = torch.from_numpy(transpose(rows.numpy()))
    else:
        swapped = rows.t().contiguous()
    return swapped.view(t.dtype).view(b, a, c)


def transpose(x):
    """np.ascontiguousarray(x.T) for a 2-d x; a tall x in blocks of 32 KB of its rows, whose columns
    then stay cached while written out: a gradient [10000, 64] int64 just summed, 1.8 ms against
    2.3 (0.7 against 1.3 when cached; AMD EPYC, AVX2, one thread); a wide x is faster whole."""
    a, b = x.shape
    step = max(1, (1 << 15) // (b * x.itemsize))
    if a <= b or step >= a:
        return np.ascontiguousarray(x.T)
    out = np.empty((b, a), x.dtype)
    for start in range(0, a, step):
        out[:, start:start + step] = x[start:start + step].T
    return out


class MLP(Layered):
    """784-1000-1000-10 with ReLU (section 6.2); dropout p on each hidden layer's output if asked."""

    def __init__(self, in_features, num_classes, hidden=(1000, 1000), p=0.0):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(p) if p > 0 else nn.Identity()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, num_classes)

    def forward_with(self, ops, x):
        return ops.layer(self.out, ops.layer(self.hidden, x))


class VAE(Layered):
    """Kingma & Welling's VAE: x -> 500 softplus -> (mu, log sigma^2) of a 50-d Gaussian q(z|x);
    z = mu + sigma * eps (one sample, the reparameterisation trick); z -> 500 softplus -> Bernoulli
    logits of every pixel. forward returns the per-sample negative ELBO in nats ([B]; stacked [K, B]):
    -log p(x|z) + KL(q(z|x) || N(0, I)), with pixel intensities in [0, 1] as Bernoulli targets."""

    def __init__(self, in_features, hidden=500, latent=50):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.Softplus())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Softplus(), nn.Linear(hidden, in_features))

    def forward_with(self, ops, x):
        h = ops.layer(self.encoder, x)
        mu, logvar = ops.layer(self.mu, h), ops.layer(self.logvar, h)
        z = mu + torch.exp(0.5 * logvar) * ops.randn(mu)
        logits = ops.layer(self.decoder, z)
        target = x if x.shape == logits.shape else x.expand_as(logits)     # a stack's shared minibatch
        reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)
        return reconstruction + kl


# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class ModelSpec:
    model: type               # the nn.Module class
    arguments: object         # (input_shape, num_classes, dropout, p) -> the keyword arguments of model
    input: str                # "image" (C, H, W), "flat" (any shape, flattened), or "bow" (SparseRows)
    dropouts: tuple = ("none",)   # accepted --dropout values; the first is the default
    describe: str = ""

    def build(self, input_shape, num_classes, dropout, p):
        return self.model(**self.arguments(input_shape, num_classes, dropout, p))

    @property
    def stackable(self):
        """K of its models can train as one (training.stacking.Stack): its class has a stacked form."""
        return hasattr(self.model, "stacked_forward")


def _dropout_p(dropout, p):
    return p if dropout != "none" else 0.0


MODELS = {
    "adam-cnn": ModelSpec(AdamPaperCNN, lambda shape, k, dropout, p: dict(num_classes=k, dropout=dropout, p=p,
                                                                          in_channels=shape[0]),
                          "image", DROPOUT_PLACEMENTS, "c64-c64-c128-1000 CNN (paper section 6.3)"),
    "tutorial-cnn": ModelSpec(TutorialCNN, lambda shape, k, dropout, p: dict(num_classes=k, in_channels=shape[0],
                                                                             size=shape[1]),
                              "image", ("none",), "PyTorch tutorial CNN: conv 6-16, FC 120-84"),
    "resnet18": ModelSpec(CifarResNet18, lambda shape, k, dropout, p: dict(num_classes=k, in_channels=shape[0]),
                          "image", ("none",), "CIFAR ResNet-18: 3x3 stem, no max-pool"),
    "logreg": ModelSpec(LogisticRegression, lambda shape, k, dropout, p: dict(in_features=_numel(shape), num_classes=k),
                        "flat", ("none",), "multinomial logistic regression"),
    "linreg": ModelSpec(LinearRegression, lambda shape, k, dropout, p: dict(in_features=_numel(shape)),
                        "flat", ("none",), "linear regression y = Xw + b, w ~ N(0, 0.01^2), b = 0 (D2L)"),
    "bow-logreg": ModelSpec(BowLogisticRegression, lambda shape, k, dropout, p: dict(vocab_size=shape[0], num_classes=k,
                                                                                     p=_dropout_p(dropout, p)),
                            "bow", ("paper", "none"), "logistic regression on a bag of words; paper = feature dropout"),
    "mlp": ModelSpec(MLP, lambda shape, k, dropout, p: dict(in_features=_numel(shape), num_classes=k,
                                                            p=_dropout_p(dropout, p)),
                     "flat", ("paper", "none"), "784-1000-1000-10 ReLU MLP; paper = dropout on the hidden layers"),
    "vae": ModelSpec(VAE, lambda shape, k, dropout, p: dict(in_features=_numel(shape)),
                     "flat", ("none",), "VAE: 500 softplus, 50-d Gaussian latent, Bernoulli decoder"),
}


def stackable(name):
    return MODELS[name].stackable


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def build(name, input_shape, num_classes, dropout=None, p=0.5):
    spec = MODELS[name]
    return spec.build(tuple(input_shape), num_classes, dropout or spec.dropouts[0], p)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
