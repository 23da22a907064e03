"""Many runs of one small workload trained together as one stacked model: the members of a stack.

Each member keeps what a solo run has: its own initialisation (from its seed), its own parameters
(views into the stacked weights, so the stacked forward reads them without a copy), its own
parameter group in one optimizer (so every torch.optim.Optimizer, the paper's Adam and the
user's own stay correct unchanged), and its own random stream for dropout and sampling noise,
started where the solo run's global stream would be after the model's initialisation.

A linear layer of K members is one batched matrix product, its weight gradients another
(StackedLinear); a bag of words is model.BagOfWords, the solo model's own sum. Members that share
a seed share the data order: then one minibatch feeds all of them and the first layer is a single
matrix product. A model stacks when its class has a stacked form (model.py: stacked_forward,
written once with its solo forward where it can be); the others train their runs one at a time.

Equality with solo runs (tests/test_trials.py): with each member's own data order, parameters are
bit-identical to the solo run's after 50 steps (the same matrix kernels per member); with a shared
minibatch the first layer is one wider product, whose sums round differently, so there the test
is fp64 agreement to 1e-9.
"""
import torch
import torch.nn.functional as F
from torch import nn

from optstudy.data import bow, datasets


class StackedLinear(torch.autograd.Function):
    """y[k] = x[k] @ W[k]^T + b[k] for the K members, x shared ([B, in]) or per member ([K, B, in]).
    weight and bias are the stacked storage; the K weight views and K bias views come last, so
    that autograd fills each member's own .grad from the slices of one batched gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, *views):
        ctx.save_for_backward(x, weight)
        k, out, n = weight.shape
        if x.dim() == 2:              # one minibatch for every member: one [B, in] x [in, K*out] product
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


class Stack(nn.Module):
    """K copies of one stackable model (model.py: its class defines stacked_forward), trained as
    one: each member's model keeps its parameters, which become views into one stacked tensor per
    parameter name. With stacked_grads (for StackedStep) the stacked tensors themselves take the
    gradients, whole. The model's stacked forward runs against the ops this class provides (layer,
    randn, as model.SOLO provides them to a solo forward; tensors and draws for the bag of words)."""

    def __init__(self, models, generators, stacked_grads=False):
        super().__init__()
        self.members = list(models)           # a plain list: their parameters are views of ours
        if not hasattr(self.members[0], "stacked_forward"):
            raise TypeError(f"{type(self.members[0]).__name__} has no stacked form (model.py: stacked_forward)")
        self.generators = list(generators)    # per member: dropout masks and sampling noise
        self.stacked_grads = stacked_grads
        self.names = {module: name for name, module in self.members[0].named_modules()}   # member 0's layers
        self.stacked, self.views = {}, {}
        for name, _ in self.members[0].named_parameters():
            base = torch.stack([m.get_parameter(name).detach() for m in self.members])
            self.stacked[name] = nn.Parameter(base, requires_grad=stacked_grads)
            self.views[name] = []
            for k, m in enumerate(self.members):
                view = nn.Parameter(base[k], requires_grad=not stacked_grads)
                set_parameter(m, name, view)
                self.views[name].append(view)

    def __len__(self):
        return len(self.members)

    def forward(self, x):
        return self.members[0].stacked_forward(self, x)

    def layer(self, module, h):
        """Member 0's layer `module` (a Linear, or a Sequential of Linear, ReLU, Softplus, Dropout and
        Identity) run for every member: the op of ops.layer in model.Layered."""
        if isinstance(module, nn.Linear):
            return self.linear(self.names[module], h)
        if isinstance(module, nn.Sequential):
            for layer in module:
                h = self.layer(layer, h)
            return h
        if isinstance(module, nn.ReLU):
            return torch.relu(h)
        if isinstance(module, nn.Softplus):
            return F.softplus(h)
        if isinstance(module, nn.Dropout):
            return self.dropout(h, module.p)
        if isinstance(module, nn.Identity):
            return h
        raise TypeError(f"{type(module).__name__} has no stacked form")

    def tensors(self, *names):
        """The stacked tensors of these parameters, and (unless stacked_grads) every member's views of
        them, name after name: a batched autograd Function takes the views last, so that autograd
        fills each member's own .grad from the slices of one batched gradient."""
        views = () if self.stacked_grads else tuple(v for name in names for v in self.views[name])
        return [self.stacked[name] for name in names], views

    def linear(self, prefix, x):
        (weight, bias), views = self.tensors(f"{prefix}.weight", f"{prefix}.bias")
        return StackedLinear.apply(x, weight, bias, *views)

    def dropout(self, h, p):
        """nn.Dropout per member, drawing each member's mask from its own stream as the solo run would."""
        if not self.training or p == 0:
            return h
        noise = torch.empty_like(h)
        for k, generator in enumerate(self.generators):
            noise[k].bernoulli_(1 - p, generator=generator)
        return h * noise.div_(1 - p)

    def draws(self, counts, device):
        """Member after member, counts[k] uniform numbers from member k's own stream: the solo run's
        torch.rand(counts[k]), written into one buffer."""
        out = torch.empty(sum(counts), device=device)
        start = 0
        for n, generator in zip(counts, self.generators):
            torch.rand(n, generator=generator, device=device, out=out[start:start + n])
            start += n
        return out

    def randn(self, like):
        """torch.randn_like per member, from each member's own stream."""
        return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device, dtype=like.dtype)
                            for g in self.generators])


def set_parameter(module, name, value):
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)


# ---------------------------------------------------------------- data

def train_batches(data, inputs, batch_size, generators):
    """The epoch's minibatches of K members, each in its own order (its generator draws exactly what
    a solo run's would): x [K, B, D], y [K, B]; or, where every member drew the same order (they
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
            yield (x, y[0]) if len(orders) == 1 else (bow.StackedRows(x, len(orders)), y)
        else:
            x = x.reshape(*idx.shape, -1)
            yield (x[0], y[0]) if len(orders) == 1 else (x, y)


def eval_batches(x, y, batch_size, inputs):
    """Evaluation minibatches, shared by every member: x [B, D], y [B]."""
    for xb, yb in datasets.eval_batches(x, y, batch_size, inputs):
        yield (xb.flatten(1) if isinstance(xb, torch.Tensor) else xb), yb


# ---------------------------------------------------------------- one optimizer, K groups

def group_of(state_dict, k):
    """Member k's part of a K-group optimizer's state_dict, in the format of a solo optimizer's. Its
    tensors are cloned: the stacked step's state is views of stacked tensors, and torch.save of a
    view writes its whole storage (every member's state)."""
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


def schedule_of(state_dict, k, members):
    """Member k's part of a learning-rate schedule's state_dict (its entries per group: base_lrs, ...)."""
    return {key: [v[k]] if isinstance(v, list) and len(v) == members else v for key, v in state_dict.items()}


def merge_schedules(solo_states):
    return {key: sum((s[key] for s in solo_states), []) if isinstance(v, list) else v
            for key, v in solo_states[0].items()}


def member_model_state(stack, k):
    """Member k's model state_dict, cloned out of the stacked storage (a view would save all K)."""
    return {name: t.detach().clone() for name, t in stack.members[k].state_dict().items()}


# ---------------------------------------------------------------- --stacked-step

class StackedStep:
    """The update of torch.optim.Adam (L2 weight decay) or torch.optim.SGD (momentum, Nesterov) by
    torch's fused kernels (what Adam(fused=True) and SGD(fused=True) run), called once per group of
    members that share every setting, on their rows of the stacked tensors: an option
    (--stacked-step), never silent. It skips torch's per-group Python loop (about 190 us a member
    for Adam, measured on the AVX2 EPYC; the fused kernel on a member's rows takes about 37 us). The
    K-group optimizer stays the bookkeeping: its groups hold each member's settings (the schedule
    sets their lr), its state holds views of the stacked state, so checkpoints are those of solo
    runs. A frozen (diverged) member is left out of every call. The numbers are those of the fused
    kernel, which rounds differently from torch's default loop: tests/test_trials.py checks fp64
    agreement with solo runs."""

    def __init__(self, optimizer, stack):
        why = stacked_step_refusal(optimizer)
        if why:
            raise ValueError(why)
        self.optimizer, self.stack, self.kind = optimizer, stack, type(optimizer).__name__
        self.names = list(stack.stacked)
        self.buffers = {}                    # name -> {state key: stacked tensor}
        self.frozen = set()                  # members that diverged: no more updates (loop.freeze_diverged)
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
        """The stacked state tensor `key` of parameter `name`: adopted from the optimizer's per-member
        state (a resume loads it there) or made; each member's state entry becomes a view of it."""
        buffers = self.buffers.setdefault(name, {})
        if key not in buffers:
            per_member = [self.optimizer.state[view].get(key) for view in self.stack.views[name]]
            buffers[key] = torch.stack(per_member) if all(t is not None for t in per_member) else make()
            for view, own in zip(self.stack.views[name], buffers[key]):
                self.optimizer.state[view][key] = own
        return buffers[key]

    def groups(self, live, keys):
        """{settings: [members]}: the live members grouped by the values of their groups' `keys`."""
        grouped = {}
        for k in live:
            group = self.optimizer.param_groups[k]
            grouped.setdefault(tuple(float(group[key]) if key == "lr" else group[key] for key in keys), []).append(k)
        return grouped

    def adam(self, names, live):
        """One fused call per group of settings, over every parameter's rows of its members."""
        params = [self.stack.stacked[name] for name in names]
        steps = [self.state(name, "step", lambda: torch.zeros(len(p), dtype=torch.float32, device=p.device))
                 for name, p in zip(names, params)]
        exp_avgs = [self.state(name, "exp_avg", lambda: torch.zeros_like(p)) for name, p in zip(names, params)]
        exp_avg_sqs = [self.state(name, "exp_avg_sq", lambda: torch.zeros_like(p)) for name, p in zip(names, params)]
        increment = torch.zeros(len(self.stack), device=params[0].device)
        increment[live] = 1
        for step in steps:
            step.add_(increment)
        tensors = [member_rows(t) for t in (params, [p.grad for p in params], exp_avgs, exp_avg_sqs, steps)]
        keys = ("lr", "betas", "eps", "weight_decay")
        for (lr, (beta1, beta2), eps, weight_decay), ks in self.groups(live, keys).items():
            p, g, m, v, s = ([t[k] for k in ks for t in each] for each in tensors)
            torch._fused_adam_(p, g, m, v, [], s, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                               weight_decay=weight_decay, eps=eps, maximize=False)

    def sgd(self, names, live):
        params = [self.stack.stacked[name] for name in names]
        with_momentum = self.optimizer.param_groups[0]["momentum"] != 0       # all members or none (the refusal)
        started = all(name in self.buffers or self.optimizer.state[self.stack.views[name][0]].get("momentum_buffer")
                      is not None for name in names)
        buffers = [self.state(name, "momentum_buffer", lambda: torch.empty_like(p))
                   for name, p in zip(names, params)] if with_momentum else []
        tensors = [member_rows(t) for t in (params, [p.grad for p in params], buffers)]
        keys = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
        for (lr, momentum, dampening, weight_decay, nesterov), ks in self.groups(live, keys).items():
            p, g, b = ([t[k] for k in ks for t in each] for each in tensors)
            torch._fused_sgd_(p, g, b, weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=dampening,
                              nesterov=nesterov, maximize=False, is_first_step=with_momentum and not started)


def member_rows(stacked):
    """[t.unbind(0) for t in stacked]: per stacked tensor its K member rows, which the fused kernels take."""
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
            return "--stacked-step: the runs stacked together must all use momentum or all not"
        return None
    return (f"--stacked-step: {type(optimizer).__name__} has no stacked form (torch.optim.Adam and SGD have); "
            "without the flag every optimizer runs batched, one parameter group per member")
