"""Many trials of one small workload trained together, as one stacked model.

Each trial keeps what a solo run has: its own initialisation (from its seed), its own parameters
(views into the stacked weights, so the stacked forward reads them without a copy), its own
parameter group in one optimizer (so every torch.optim.Optimizer, the paper's Adam and the
user's own stay correct unchanged), and its own random stream for dropout and sampling noise,
started where the solo run's global stream would be after the model's initialisation.

A linear layer of K trials is one batched matrix product, its weight gradients another
(StackedLinear); a bag of words is model.BagOfWords, the solo model's own sum. Trials that share
a seed share the data order: then one minibatch feeds all of them and the first layer is a single
matrix product. A workload says whether and how its model
stacks (STACKED); the others run their trials one at a time.

Equality with solo runs (tests/test_trials.py): with each trial's own data order, parameters are
bit-identical to the solo run's after 50 steps (the same matrix kernels per trial); with a shared
minibatch the first layer is one wider product, whose sums round differently, so there the test
is fp64 agreement to 1e-9.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import model as models
from optstudy.data import datasets


class StackedLinear(torch.autograd.Function):
    """y[k] = x[k] @ W[k]^T + b[k] for the K trials, x shared ([B, in]) or per trial ([K, B, in]).
    weight and bias are the stacked storage; the K weight views and K bias views come last, so
    that autograd fills each trial's own .grad from the slices of one batched gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, *views):
        ctx.save_for_backward(x, weight)
        k, out, n = weight.shape
        if x.dim() == 2:              # one minibatch for every trial: one [B, in] x [in, K*out] product
            return torch.addmm(bias.reshape(-1), x, weight.reshape(k * out, n).t()).view(len(x), k, out).transpose(0, 1)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        k, out, n = weight.shape
        if x.dim() == 2:
            grad_weight = grad.transpose(0, 1).reshape(len(x), k * out).t().mm(x).view(k, out, n)
        else:
            grad_weight = torch.bmm(grad.transpose(1, 2), x)
        grad_bias = grad.sum(1)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, weight)
            grad_x = grad_x.sum(0) if x.dim() == 2 else grad_x
        if ctx.needs_input_grad[1]:           # stacked step: the stacked tensors take the gradients whole
            return grad_x, grad_weight, grad_bias
        return (grad_x, None, None, *grad_weight.unbind(0), *grad_bias.unbind(0))


@dataclass
class StackedRows:
    """K trials' minibatches of sparse rows, each in its own order: trial after trial, B rows each."""
    rows: object                 # bow.SparseRows of K * B rows
    trials: int


class Stack(nn.Module):
    """K copies of one model, trained as one: each trial's model keeps its parameters, which become
    views into one stacked tensor per parameter name. With stacked_grads (for StackedStep) the
    stacked tensors themselves take the gradients, whole."""

    def __init__(self, models, generators, forward, stacked_grads=False):
        super().__init__()
        self.trials = list(models)            # a plain list: their parameters are views of ours
        self.generators = list(generators)    # per trial: dropout masks and sampling noise
        self.stacked_forward = forward
        self.stacked_grads = stacked_grads
        self.stacked, self.views = {}, {}
        for name, _ in self.trials[0].named_parameters():
            base = torch.stack([m.get_parameter(name).detach() for m in self.trials])
            self.stacked[name] = nn.Parameter(base, requires_grad=stacked_grads)
            self.views[name] = []
            for k, m in enumerate(self.trials):
                view = nn.Parameter(base[k], requires_grad=not stacked_grads)
                set_parameter(m, name, view)
                self.views[name].append(view)

    def __len__(self):
        return len(self.trials)

    def forward(self, x):
        return self.stacked_forward(self, x)

    def linear(self, prefix, x):
        weight, bias = f"{prefix}.weight", f"{prefix}.bias"
        views = () if self.stacked_grads else (*self.views[weight], *self.views[bias])
        return StackedLinear.apply(x, self.stacked[weight], self.stacked[bias], *views)

    def dropout(self, h, p):
        """nn.Dropout per trial, drawing each trial's mask from its own stream as the solo run would."""
        if not self.training or p == 0:
            return h
        noise = torch.empty_like(h)
        for k, generator in enumerate(self.generators):
            noise[k].bernoulli_(1 - p, generator=generator)
        return h * noise.div_(1 - p)

    def bag_of_words(self, x):
        """The solo BowLogisticRegression per trial, on shared rows or StackedRows."""
        weight, bias = self.stacked["weight"], self.stacked["bias"]
        k = len(self)
        shared = not isinstance(x, StackedRows)
        rows = x if shared else x.rows
        per_trial = len(rows) if shared else len(rows) // k
        row_ids = rows.row_ids()
        if shared:
            cols, counts = rows.cols, [len(rows.cols)] * k
        else:                                  # word w of trial t is row t * V + w of the [K * V, C] weights
            nonzeros = rows.offsets[per_trial::per_trial] - rows.offsets[:-1:per_trial]     # per trial
            first_row = torch.arange(0, k * weight.shape[1], weight.shape[1], device=rows.cols.device)
            cols = rows.cols + torch.repeat_interleave(first_row, nonzeros)   # an int64 division costs 5x this
            counts = nonzeros.tolist()
        p = self.trials[0].p
        scale = None
        if self.training and p > 0:
            draws = self.draws(counts, cols.device)
            scale = models.dropout_scale(draws.view(k if shared else 1, -1), p, weight.shape[2])
        views = () if self.stacked_grads else (*self.views["weight"], *self.views["bias"])
        return models.BagOfWords.apply(cols, row_ids, per_trial, shared, scale, weight, bias, *views)

    def draws(self, counts, device):
        """Trial after trial, counts[k] uniform numbers from trial k's own stream: the solo run's
        torch.rand(counts[k]), written into one buffer."""
        out = torch.empty(sum(counts), device=device)
        start = 0
        for n, generator in zip(counts, self.generators):
            torch.rand(n, generator=generator, device=device, out=out[start:start + n])
            start += n
        return out

    def randn(self, like):
        """torch.randn_like per trial, from each trial's own stream."""
        return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device, dtype=like.dtype)
                            for g in self.generators])


def set_parameter(module, name, value):
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)


def sequential(stack, prefix, layers, h):
    """A solo nn.Sequential of Linear, ReLU, Softplus, Dropout and Identity, run stacked."""
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            h = stack.linear(f"{prefix}.{i}", h)
        elif isinstance(layer, nn.ReLU):
            h = torch.relu(h)
        elif isinstance(layer, nn.Softplus):
            h = F.softplus(h)
        elif isinstance(layer, nn.Dropout):
            h = stack.dropout(h, layer.p)
        elif not isinstance(layer, nn.Identity):
            raise TypeError(f"{type(layer).__name__} has no stacked form")
    return h


def logreg_forward(stack, x):
    return stack.linear("linear", x)


def mlp_forward(stack, x):
    return stack.linear("out", sequential(stack, "hidden", stack.trials[0].hidden, x))


def vae_forward(stack, x):
    """The solo VAE's per-sample negative ELBO, per trial: [K, B]."""
    solo = stack.trials[0]
    h = sequential(stack, "encoder", solo.encoder, x)
    mu, logvar = stack.linear("mu", h), stack.linear("logvar", h)
    z = mu + torch.exp(0.5 * logvar) * stack.randn(mu)
    logits = sequential(stack, "decoder", solo.decoder, z)
    target = x.expand_as(logits) if x.dim() == 2 else x
    reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)
    return reconstruction + kl


def bow_forward(stack, x):
    return stack.bag_of_words(x)


# model.MODELS name -> how K of its models run as one; a model not here runs its trials one at a time.
STACKED = {"logreg": logreg_forward, "mlp": mlp_forward, "vae": vae_forward, "bow-logreg": bow_forward}


def stackable(model_name):
    return model_name in STACKED


def stack(model_name, models, generators, stacked_grads=False):
    return Stack(models, generators, STACKED[model_name], stacked_grads)


# ---------------------------------------------------------------- losses per trial

def classify(stack, x, y):
    """([K] mean cross-entropy per trial, [K, B, C] logits); y is [B] (shared) or [K, B]."""
    logits = stack(x)
    k, b, c = logits.shape
    y = y.expand(k, b) if y.dim() == 1 else y
    losses = F.cross_entropy(logits.float().reshape(k * b, c), y.reshape(-1), reduction="none").view(k, b).mean(1)
    return losses, logits.detach()


def negative_elbo(stack, x, y):
    return stack(x).float().mean(1), None


OBJECTIVES = {"classify": classify, "elbo": negative_elbo}


def accuracies(outputs, labels, k):
    """Per trial: percent correct over the epoch's [K, B, C] logits; labels [K, B] or shared [B]."""
    if not outputs or outputs[0] is None:
        return [None] * k
    correct = sum((out.argmax(-1) == y).sum(-1) for out, y in zip(outputs, labels))
    total = sum(y.shape[-1] for y in labels)
    return [100.0 * c / total for c in correct.tolist()]


# ---------------------------------------------------------------- data

def train_batches(data, inputs, batch_size, generators):
    """The epoch's minibatches of K trials, each in its own order (its generator draws exactly what
    a solo run's would): x [K, B, D], y [K, B]; or, where every trial drew the same order (they
    share a seed), one minibatch for all: x [B, D], y [B]."""
    device = data.train_y.device
    orders = torch.stack([datasets.epoch_plan(len(data.train_y), g, augment=False)[0] for g in generators])
    if (orders == orders[0]).all():
        orders = orders[:1]
    orders = orders.to(device)
    sparse = not isinstance(data.train_x, torch.Tensor)
    for start in range(0, orders.shape[1], batch_size):
        idx = orders[:, start:start + batch_size]
        x = inputs(datasets.take(data.train_x, idx.reshape(-1)))
        y = data.train_y.index_select(0, idx.reshape(-1)).view(idx.shape)
        if sparse:
            yield (x, y[0]) if len(orders) == 1 else (StackedRows(x, len(orders)), y)
        else:
            x = x.reshape(*idx.shape, -1)
            yield (x[0], y[0]) if len(orders) == 1 else (x, y)


def eval_batches(x, y, batch_size, inputs):
    """Evaluation minibatches, shared by every trial: x [B, D], y [B]."""
    for xb, yb in datasets.eval_batches(x, y, batch_size, inputs):
        yield (xb.flatten(1) if isinstance(xb, torch.Tensor) else xb), yb


# ---------------------------------------------------------------- one optimizer, K groups

def group_of(state_dict, k):
    """Trial k's part of a K-group optimizer's state_dict, in the format of a solo optimizer's. Its
    tensors are cloned: the stacked step's state is views of stacked tensors, and torch.save of a
    view writes its whole storage (every trial's state)."""
    group = state_dict["param_groups"][k]
    ids = group["params"]
    own = lambda state: {key: v.clone() if torch.is_tensor(v) else v for key, v in state.items()}
    return {"state": {i: own(state_dict["state"][p]) for i, p in enumerate(ids) if p in state_dict["state"]},
            "param_groups": [{**group, "params": list(range(len(ids)))}]}


def merge_groups(solo_states):
    """K solo optimizers' state_dicts -> the state_dict of one optimizer with their K groups."""
    merged = {"state": {}, "param_groups": []}
    offset = 0
    for solo in solo_states:
        group = solo["param_groups"][0]
        merged["param_groups"].append({**group, "params": [offset + i for i in group["params"]]})
        merged["state"].update({offset + i: s for i, s in solo["state"].items()})
        offset += len(group["params"])
    return merged


def schedule_of(state_dict, k, trials):
    """Trial k's part of a learning-rate schedule's state_dict (its entries per group: base_lrs, ...)."""
    return {key: [v[k]] if isinstance(v, list) and len(v) == trials else v for key, v in state_dict.items()}


def merge_schedules(solo_states):
    return {key: sum((s[key] for s in solo_states), []) if isinstance(v, list) else v
            for key, v in solo_states[0].items()}


def trial_model_state(stack, k):
    """Trial k's model state_dict, cloned out of the stacked storage (a view would save all K)."""
    return {name: t.detach().clone() for name, t in stack.trials[k].state_dict().items()}


# ---------------------------------------------------------------- --stacked-step

class StackedStep:
    """The update of torch.optim.Adam (L2 weight decay) or torch.optim.SGD (momentum, Nesterov) by
    torch's fused kernels (what Adam(fused=True) and SGD(fused=True) run), called once per group of
    trials that share every setting, on their rows of the stacked tensors: an option
    (--stacked-step), never silent. It skips torch's per-group Python loop (about 190 us a trial
    for Adam, measured on the AVX2 EPYC; the fused kernel on a trial's rows takes about 37 us). The
    K-group optimizer stays the bookkeeping: its groups hold each trial's settings (the schedule
    sets their lr), its state holds views of the stacked state, so checkpoints are those of solo
    runs. A frozen (diverged) trial is left out of every call. The numbers are those of the fused
    kernel, which rounds differently from torch's default loop: tests/test_trials.py checks fp64
    agreement with solo runs."""

    def __init__(self, optimizer, stack):
        why = stacked_step_refusal(optimizer)
        if why:
            raise ValueError(why)
        self.optimizer, self.stack, self.kind = optimizer, stack, type(optimizer).__name__
        self.names = list(stack.stacked)
        self.buffers = {}                    # name -> {state key: stacked tensor}
        self.frozen = set()                  # trials that diverged: no more updates (train.freeze_diverged)
        self.started = False

    def zero_grad(self, set_to_none=True):
        for p in self.stack.stacked.values():
            p.grad = None

    @torch.no_grad()
    def step(self):
        if not self.started:        # once: the optimizer's own step, a no-op (its parameters hold no gradient),
            self.optimizer.step()   # so that the learning-rate schedule sees it stepped
            self.started = True
        live = [k for k in range(len(self.stack)) if k not in self.frozen]
        names = [name for name in self.names if self.stack.stacked[name].grad is not None]
        (self.adam if self.kind == "Adam" else self.sgd)(names, live)

    def state(self, name, key, make):
        """The stacked state tensor `key` of parameter `name`: adopted from the optimizer's per-trial
        state (a resume loads it there) or made; each trial's state entry becomes a view of it."""
        buffers = self.buffers.setdefault(name, {})
        if key not in buffers:
            per_trial = [self.optimizer.state[view].get(key) for view in self.stack.views[name]]
            buffers[key] = torch.stack(per_trial) if all(t is not None for t in per_trial) else make()
            for view, own in zip(self.stack.views[name], buffers[key]):
                self.optimizer.state[view][key] = own
        return buffers[key]

    def groups(self, live, keys):
        """{settings: [trials]}: the live trials grouped by the values of their groups' `keys`."""
        grouped = {}
        for k in live:
            group = self.optimizer.param_groups[k]
            grouped.setdefault(tuple(float(group[key]) if key == "lr" else group[key] for key in keys), []).append(k)
        return grouped

    def adam(self, names, live):
        """One fused call per group of settings, over every parameter's rows of its trials."""
        params = [self.stack.stacked[name] for name in names]
        steps = [self.state(name, "step", lambda: torch.zeros(len(p), dtype=torch.float32, device=p.device))
                 for name, p in zip(names, params)]
        exp_avgs = [self.state(name, "exp_avg", lambda: torch.zeros_like(p)) for name, p in zip(names, params)]
        exp_avg_sqs = [self.state(name, "exp_avg_sq", lambda: torch.zeros_like(p)) for name, p in zip(names, params)]
        increment = torch.zeros(len(self.stack), device=params[0].device)
        increment[live] = 1
        for step in steps:
            step.add_(increment)
        tensors = [trial_rows(t) for t in (params, [p.grad for p in params], exp_avgs, exp_avg_sqs, steps)]
        keys = ("lr", "betas", "eps", "weight_decay")
        for (lr, (beta1, beta2), eps, weight_decay), ks in self.groups(live, keys).items():
            p, g, m, v, s = ([t[k] for k in ks for t in each] for each in tensors)
            torch._fused_adam_(p, g, m, v, [], s, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                               weight_decay=weight_decay, eps=eps, maximize=False)

    def sgd(self, names, live):
        params = [self.stack.stacked[name] for name in names]
        with_momentum = self.optimizer.param_groups[0]["momentum"] != 0       # all trials or none (the refusal)
        started = all(name in self.buffers or self.optimizer.state[self.stack.views[name][0]].get("momentum_buffer")
                      is not None for name in names)
        buffers = [self.state(name, "momentum_buffer", lambda: torch.empty_like(p))
                   for name, p in zip(names, params)] if with_momentum else []
        tensors = [trial_rows(t) for t in (params, [p.grad for p in params], buffers)]
        keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
        for (lr, momentum, dampening, weight_decay, nesterov), ks in self.groups(live, keys).items():
            p, g, b = ([t[k] for k in ks for t in each] for each in tensors)
            torch._fused_sgd_(p, g, b, weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=dampening,
                              nesterov=nesterov, maximize=False, is_first_step=with_momentum and not started)


def trial_rows(stacked):
    """[t.unbind(0) for t in stacked]: per stacked tensor its K trial rows, which the fused kernels take."""
    return [t.unbind(0) for t in stacked]


def stacked_step_refusal(optimizer):
    """Why StackedStep cannot stand in for this optimizer, or None."""
    groups = optimizer.param_groups
    if type(optimizer) is torch.optim.Adam:
        flags = [k for k in ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
                 if any(g.get(k) for g in groups)]
        return f"--stacked-step: torch.optim.Adam with {', '.join(flags)} has no stacked form" if flags else None
    if type(optimizer) is torch.optim.SGD:
        if any(g.get("maximize") or g.get("differentiable") for g in groups):
            return "--stacked-step: SGD with maximize or differentiable has no stacked form"
        if len({g["momentum"] == 0 for g in groups}) != 1:
            return "--stacked-step: the trials must all use momentum or all not"
        return None
    return (f"--stacked-step: {type(optimizer).__name__} has no stacked form (torch.optim.Adam and SGD have); "
            "without the flag every optimizer runs batched, one parameter group per trial")
