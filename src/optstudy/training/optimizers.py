"""The optimizers this study compares, in one registry, plus Adam and AdaMax written from the paper.

Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015:
  Algorithm 1 (Adam), section 7.1 (AdaMax), section 6.4 (the bias-correction ablation).

Each registry entry names its constructor, its default hyperparameters and which of the
flags --lr, --weight-decay, --betas, --eps and --no-bias-correction it accepts.
A flag an optimizer does not accept is an error, not silently ignored.

Any other torch.optim.Optimizer plugs in without editing this file, by import path
(`package.module:ClassName`) or from a file (`path/to/file.py:ClassName`); `--opt KEY=VALUE`
sets any constructor argument of any optimizer (values are Python literals).
"""
import ast
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optstudy.core.cli import UserError


class PaperAdam(torch.optim.Optimizer):
    """Adam, line by line as Algorithm 1. Weight decay is L2 added to the gradient, as torch.optim.Adam.

    bias_correction=False drops the divisions by (1 - beta^t), the variant of section 6.4
    that torch.optim.Adam cannot express."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _call(closure)
        for group in self.param_groups:
            alpha, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for theta in (p for p in group["params"] if p.grad is not None):
                g = theta.grad + group["weight_decay"] * theta     # g_t (plus L2 term)
                state = self.state[theta]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(theta)            # m_0 <- 0
                    state["v"] = torch.zeros_like(theta)            # v_0 <- 0
                state["step"] += 1
                t, m, v = state["step"], state["m"], state["v"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)              # m_t <- b1 m_{t-1} + (1 - b1) g_t
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)       # v_t <- b2 v_{t-1} + (1 - b2) g_t^2
                m_hat, v_hat = m, v
                if group["bias_correction"]:
                    m_hat = m / (1 - beta1 ** t)                    # m^_t <- m_t / (1 - b1^t)
                    v_hat = v / (1 - beta2 ** t)                    # v^_t <- v_t / (1 - b2^t)
                theta.sub_(alpha * m_hat / (v_hat.sqrt() + eps))    # theta_t <- theta_{t-1} - a m^_t / (sqrt(v^_t) + eps)
        return loss


class PaperAdamax(torch.optim.Optimizer):
    """AdaMax as section 7.1: the infinity-norm variant of Adam.

    Like torch.optim.Adamax, eps is added to |g| inside the max, so u_t > 0 even where a
    gradient is exactly zero; the paper's algorithm has no eps."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bias_correction=True):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _call(closure)
        for group in self.param_groups:
            alpha, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            for theta in (p for p in group["params"] if p.grad is not None):
                g = theta.grad + group["weight_decay"] * theta
                state = self.state[theta]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(theta)            # m_0 <- 0
                    state["u"] = torch.zeros_like(theta)            # u_0 <- 0
                state["step"] += 1
                t, m, u = state["step"], state["m"], state["u"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)              # m_t <- b1 m_{t-1} + (1 - b1) g_t
                torch.maximum(u * beta2, g.abs() + eps, out=u)      # u_t <- max(b2 u_{t-1}, |g_t|)
                step_size = alpha / (1 - beta1 ** t) if group["bias_correction"] else alpha
                theta.sub_(step_size * m / u)                       # theta_t <- theta_{t-1} - (a / (1 - b1^t)) m_t / u_t
        return loss


def _call(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


@dataclass(frozen=True)
class Spec:
    build: type                 # the optimizer class
    defaults: dict              # default hyperparameters, overridable by the flags it accepts
    describe: str               # one line for --list-optimizers and the README
    paper: str                  # where the method is in the Adam paper
    fixed: dict = field(default_factory=dict)  # settings no flag changes (e.g. momentum)


_ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

REGISTRY = {
    "adam": Spec(torch.optim.Adam, dict(_ADAM, weight_decay=5e-4),
                 "torch.optim.Adam; the tutorial's L2 weight decay 5e-4", "Algorithm 1"),
    "sgd": Spec(torch.optim.SGD, dict(lr=1e-3, weight_decay=0.0),
                "SGD with Nesterov momentum 0.9, as the tutorial", "Figs. 2-3 (SGDNesterov)",
                fixed=dict(momentum=0.9, nesterov=True)),
    "momentum": Spec(torch.optim.SGD, dict(lr=1e-3, weight_decay=0.0),
                     "SGD with heavy-ball momentum 0.9", "section 5 (related work)",
                     fixed=dict(momentum=0.9, nesterov=False)),
    "adagrad": Spec(torch.optim.Adagrad, dict(lr=1e-2, eps=1e-10, weight_decay=0.0),
                    "torch.optim.Adagrad (torch defaults)", "Figs. 2-3 (AdaGrad)"),
    "rmsprop": Spec(torch.optim.RMSprop, dict(lr=1e-3, eps=1e-8, weight_decay=0.0),
                    "torch.optim.RMSprop, alpha 0.99", "Figs. 2-3 (RMSProp)"),
    "adadelta": Spec(torch.optim.Adadelta, dict(lr=1.0, eps=1e-6, weight_decay=0.0),
                     "torch.optim.Adadelta, rho 0.9 (torch defaults)", "Figs. 2-3 (AdaDelta)"),
    "adamax": Spec(torch.optim.Adamax, dict(_ADAM, lr=2e-3, weight_decay=0.0),
                   "torch.optim.Adamax, lr 0.002 as in the paper", "section 7.1"),
    "adamw": Spec(torch.optim.AdamW, dict(_ADAM, weight_decay=1e-2),
                  "torch.optim.AdamW, decoupled weight decay (torch default 1e-2)", "Loshchilov & Hutter, 2019"),
    "paper-adam": Spec(PaperAdam, dict(_ADAM, weight_decay=5e-4, bias_correction=True),
                       "Adam written from Algorithm 1 (src/optstudy/training/optimizers.py)", "Algorithm 1, section 6.4"),
    "paper-adamax": Spec(PaperAdamax, dict(_ADAM, lr=2e-3, weight_decay=0.0, bias_correction=True),
                         "AdaMax written from section 7.1 (src/optstudy/training/optimizers.py)", "section 7.1"),
}


def names():
    return list(REGISTRY)


def is_external(name):
    """'module:Class' or 'file.py:Class': the user's own optimizer, not a registry name."""
    return ":" in name


def lookup(name):
    """The Spec of a registry name or of the user's own optimizer; a bad name is one line."""
    if name in REGISTRY:
        return REGISTRY[name]
    if not is_external(name):
        raise UserError(f"unknown optimizer {name!r} (choose from {', '.join(names())}, "
                        "or give your own as module.path:ClassName or path/to/file.py:ClassName)")
    cls = load_class(name)
    return Spec(cls, constructor_defaults(cls), f"{cls.__module__}.{cls.__qualname__} (user)", "-")


def load_class(name):
    where, _, attr = name.rpartition(":")
    if not where or not attr:
        raise UserError(f"--optimizer {name!r}: give module.path:ClassName or path/to/file.py:ClassName")
    module = import_file(where) if where.endswith(".py") else import_module(where)
    cls = getattr(module, attr, None)
    if cls is None:
        raise UserError(f"--optimizer {name!r}: {where} has no {attr!r}")
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise UserError(f"--optimizer {name!r}: {attr} is not a torch.optim.Optimizer subclass")
    if "closure" in inspect.signature(cls.step).parameters and \
            inspect.signature(cls.step).parameters["closure"].default is inspect.Parameter.empty:
        raise UserError(f"--optimizer {name!r}: its step() requires a closure (as LBFGS); this training loop "
                        "calls step() once per minibatch without one")
    return cls


def import_file(path):
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--optimizer: no file {path}")
    module_name = "user_optimizer_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit, KeyboardInterrupt) as err:   # the user's file: whatever it raises, one line
        raise UserError(f"--optimizer: importing {path} failed: {type(err).__name__}: {err}") from None
    sys.modules[module_name] = module
    return module


def import_module(path):
    try:
        return importlib.import_module(path)
    except (Exception, SystemExit, KeyboardInterrupt) as err:
        raise UserError(f"--optimizer: importing {path} failed: {type(err).__name__}: {err}") from None


def constructor_defaults(cls):
    """The keyword arguments of the constructor with their defaults (the hyperparameters)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]     # less self, params
    return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is not inspect.Parameter.empty and is_literal(p.default)}


def is_literal(value):
    """Values a JSON record holds and --opt can give back: numbers, strings, bools, None, tuples of them."""
    if isinstance(value, (tuple, list)):
        return all(is_literal(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def accepts(cls):
    """Names the constructor takes, or None if it takes any (**kwargs)."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


OPT_MAX_CHARS = 1000                     # one --opt KEY=VALUE; a longer one is a mistake, not a setting


def parse_opts(items):
    """['betas=(0.9, 0.99)', 'foreach=False'] -> {'betas': (0.9, 0.99), 'foreach': False}."""
    out = {}
    for item in items or []:
        if len(item) > OPT_MAX_CHARS:
            raise UserError(f"--opt {item[:40]}...: {len(item)} characters; at most {OPT_MAX_CHARS}")
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--opt {item!r}: give KEY=VALUE, e.g. --opt \"betas=(0.9,0.99)\"")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UserError(f"--opt {item!r}: {text!r} is not a Python literal (numbers, True, None, "
                            "tuples; quote strings: --opt mode=\"'fast'\")") from None
    return out


def resolve(name, overrides, opts=None, workload_defaults=None):
    """The hyperparameters for optimizer `name`: its defaults, then the workload's (its weight
    decay), then the flags the user gave (overrides maps hyperparameter -> value, None meaning 'not
    given'), then --opt KEY=VALUE, which may set any constructor argument. What the user gives wins
    over a default; a flag and an --opt entry that set one argument to two values are refused."""
    spec = lookup(name)
    given = {k: v for k, v in overrides.items() if v is not None}
    taken = accepts(spec.build)
    allowed = set(spec.defaults) if name in REGISTRY else set(given) if taken is None else taken
    wrong = sorted(set(given) - allowed)
    if wrong:
        flags = ", ".join("--" + ("no-bias-correction" if k == "bias_correction" else k.replace("_", "-")) for k in wrong)
        raise UserError(f"{flags} does not apply to optimizer {name!r} (it takes: {', '.join(spec.defaults)}; "
                        "other arguments: --opt KEY=VALUE)")
    opts = opts or {}
    unknown = sorted(k for k in opts if taken is not None and k not in taken or k == "params")
    if unknown:
        raise UserError(f"--opt {', '.join(unknown)}: {spec.build.__name__} takes no such argument "
                        f"(it takes: {', '.join(sorted(taken or ()))})")
    clash = sorted(k for k in set(given) & set(opts) if given[k] != opts[k])
    if clash:
        raise UserError(f"--opt {clash[0]}={opts[clash[0]]!r} contradicts --{clash[0].replace('_', '-')} "
                        f"{given[clash[0]]!r}; give it once")
    hyper = {**spec.defaults, **(workload_defaults or {}), **given, **opts}
    check_values(hyper)
    return hyper


F32_MAX = 3.4028234663852886e38          # parameters are float32: a larger setting overflows in step()


def check_values(hyper):
    """Numbers a float32 step can use (finite, below float32's largest), and betas a tuple in [0, 1)."""
    for key, value in hyper.items():
        numbers = value if isinstance(value, (tuple, list)) else (value,)
        for v in numbers:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and abs(v) < F32_MAX):
                raise UserError(f"{key}={value!r}: give a finite number below {F32_MAX:.3g} (the parameters are float32)")
    if "betas" in hyper and hyper["betas"] is not None:
        betas = hyper["betas"]
        if not (isinstance(betas, (tuple, list)) and betas and all(isinstance(b, (int, float)) for b in betas)):
            raise UserError(f"betas={betas!r}: give a tuple of numbers, e.g. --betas 0.9 0.999 or --opt \"betas=(0.9,0.999)\"")
        hyper["betas"] = tuple(betas)
        if not all(0 <= b < 1 for b in betas):
            raise UserError(f"--betas must each be in [0, 1), got {hyper['betas']}")


def build(name, params, hyper):
    spec = lookup(name)
    try:
        return spec.build(params, **{**spec.fixed, **hyper})
    except UserError:
        raise
    except (ValueError, TypeError) as err:    # e.g. torch's "Invalid learning rate", a bad --opt value
        raise UserError(f"optimizer {name!r} refused its settings: {err}") from None
    except (Exception, SystemExit) as err:    # anything else its constructor raises (the user's own code)
        raise UserError(f"optimizer {name!r} refused its settings: {type(err).__name__}: {err}") from None


def provenance(name):
    """Where the optimizer's code comes from: class, source file and its sha256, package version."""
    cls = lookup(name).build
    file = inspect.getsourcefile(cls)
    package = cls.__module__.split(".")[0]
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "file": file,
            "sha256": hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None,
            "package": package if version else None, "version": version or (torch.__version__ if package == "torch" else None)}


def table(extra=()):
    """The registry (and any user optimizers named in extra) as aligned text, for --list-optimizers."""
    rows = [("name", "defaults", "paper", "what")]
    for name in [*REGISTRY, *extra]:
        spec = lookup(name)
        shown = dict(spec.defaults, **spec.fixed)
        rows.append((name, ", ".join(f"{k}={v}" for k, v in shown.items()), spec.paper, spec.describe))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths + [0])).rstrip() for r in rows)
