"""Search spaces for the sweep: each hyperparameter a range and a scale, sampled quasi-randomly.

    python src/sweep.py --name tune --optimizers adam sgd --trials 16 --space lr,momentum --lrs 1e-4:1
    python src/sweep.py --name tune --optimizers adam sgd --trials 32 --space my_space.json

A space file (JSON, or TOML) maps optimizer names ("*" = every optimizer not named) to ranges:

    {"adam": {"lr":    {"low": 1e-5, "high": 1e-1, "scale": "log"},
              "beta1": {"low": 0.5,  "high": 0.999, "scale": "log1m"},
              "eps":   {"low": 1e-10, "high": 1.0, "scale": "log"}},
     "sgd":  {"lr": {"low": 1e-3, "high": 1.0, "scale": "log"}, "momentum": {"low": 0.5, "high": 0.99, "scale": "log1m"}}}

Scales: log, linear, log1m (log of 1 - value: beta1 0.9 -> 0.99 is as far as 0.99 -> 0.999).
Names: lr, weight_decay, eps, beta1, beta2 (one half of betas) or any other constructor argument.

The built-in dimensions (--space lr,momentum,eps,weight_decay) follow the tuning guides (Choi et
al. 2019; Google's deep learning tuning playbook): the learning rate (range from --lrs); then the
momentum the optimizer has (1 - beta1 or 1 - momentum, log); then eps, up to 1 (Choi et al. show
Adam's best eps can be that large); then weight decay. --space auto widens with the budget.

Points come from a scrambled Sobol sequence (torch.quasirandom.SobolEngine), seeded: the same
command samples the same trials, so a re-run trains nothing new. Each value is rounded to 3
significant digits (of 1 - value on the log1m scale), so a run's folder name is the value it used.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from optstudy.core.cli import UserError

SCALES = ("log", "linear", "log1m")
BUILT_IN = ("lr", "momentum", "eps", "weight_decay")
# --space auto: the dimensions worth a budget of fewer than N trials (the learning rate alone for small ones).
AUTO = ((10, ("lr",)), (25, ("lr", "momentum")), (50, ("lr", "momentum", "eps")), (math.inf, BUILT_IN))
MAX_SETTINGS = 10_000            # settings one optimizer's stage 1 may plan (--trials, or a grid's rates)


@dataclass(frozen=True)
class Dim:
    """One hyperparameter's range: low..high on a log, linear or log(1 - value) scale."""
    low: float
    high: float
    scale: str = "log"

    def value(self, u):
        """The point u in [0, 1) mapped into the range, rounded to 3 significant digits."""
        if self.scale == "linear":
            return round3(self.low + u * (self.high - self.low))
        if self.scale == "log":
            return round3(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        lo, hi = math.log(1 - self.high), math.log(1 - self.low)      # log1m: u = 0 is the value nearest 1
        return 1 - round3(math.exp(lo + u * (hi - lo)))

    def as_list(self):
        return [self.low, self.high, self.scale]


BUILT_IN_DIMS = {"momentum": Dim(0.5, 0.999, "log1m"), "eps": Dim(1e-10, 1.0, "log"),
                 "weight_decay": Dim(1e-6, 1e-2, "log")}


def round3(x):
    return float(f"{x:.3g}")


def check_dim(where, name, dim):
    """Ranges a sampler can use: finite, low < high, positive on a log scale, below 1 on log1m."""
    if dim.scale not in SCALES:
        raise UserError(f"{where}: {name} scale {dim.scale!r}: choose from {', '.join(SCALES)}")
    if not (math.isfinite(dim.low) and math.isfinite(dim.high) and dim.low < dim.high):
        raise UserError(f"{where}: {name} needs finite low < high, got {dim.low:g}..{dim.high:g}")
    if dim.scale == "log" and dim.low <= 0:
        raise UserError(f"{where}: {name} on a log scale needs low > 0, got {dim.low:g}")
    if dim.scale == "log1m" and dim.high >= 1:
        raise UserError(f"{where}: {name} on the log1m scale needs high < 1, got {dim.high:g}")
    return dim


def parse(spec, trials):
    """--space -> ('builtin', dims) or ('file', {optimizer or '*': {name: Dim}})."""
    if spec == "auto":
        return "builtin", next(dims for limit, dims in AUTO if trials < limit)
    if spec.endswith((".json", ".toml")):
        return "file", load_file(spec)
    dims = tuple(spec.split(","))
    unknown = [d for d in dims if d not in BUILT_IN]
    if unknown or "lr" not in dims:
        raise UserError(f"--space {spec!r}: give auto, a comma list of {','.join(BUILT_IN)} (with lr), "
                        "or a .json/.toml file")
    return "builtin", dims


def load_file(path):
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--space: no file {path}")
    try:
        if file.suffix == ".toml":
            import tomllib
            raw = tomllib.loads(file.read_text())
        else:
            raw = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as err:     # json and tomllib errors are ValueErrors
        raise UserError(f"--space {path}: not valid {file.suffix[1:].upper()}: {str(err)[:200]}") from None
    except RecursionError:                              # [[[[...]]]] nested thousands deep
        raise UserError(f"--space {path}: nested too deeply to be a space "
                        "({optimizer: {hyperparameter: {low, high, scale}}})") from None
    except OSError as err:
        raise UserError(f"--space {path}: cannot read it ({err.strerror or err})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"--space {path}: give {{optimizer: {{hyperparameter: {{low, high, scale}}}}}}")
    return {opt: {name: file_dim(path, name, d) for name, d in dims.items()} for opt, dims in raw.items()}


def file_dim(path, name, d):
    if not isinstance(d, dict) or set(d) - {"low", "high", "scale"} or not {"low", "high"} <= set(d):
        raise UserError(f"--space {path}: {name}: give {{\"low\": ..., \"high\": ..., \"scale\": \"log\"}}")
    try:
        dim = Dim(float(d["low"]), float(d["high"]), d.get("scale", "log"))
    except (TypeError, ValueError):
        raise UserError(f"--space {path}: {name}: low and high must be numbers") from None
    return check_dim(f"--space {path}", name, dim)


def space_for(optimizer, kind, spec, base, lr_range):
    """{name: Dim} for one optimizer. base: its resolved hyperparameters (which momentum it has)."""
    if kind == "file":
        dims = spec.get(optimizer, spec.get("*"))
        if dims is None:
            raise UserError(f"--space: the file names no space for {optimizer!r} (and no '*')")
        if "lr" not in dims:
            raise UserError(f"--space: the space of {optimizer!r} has no lr")
        return dims
    space = {"lr": check_dim("--lrs", "lr", Dim(*lr_range, "log"))}
    for dim in spec[1:]:
        name = concrete_name(dim, base)
        if name:
            space[name] = BUILT_IN_DIMS[dim]
    return space


def concrete_name(dim, base):
    """The built-in dimension as this optimizer's argument, or None where it has no such thing:
    momentum is beta1 for Adam-like optimizers, momentum where it uses some (not RMSProp's 0)."""
    if dim == "momentum":
        return "beta1" if "betas" in base else "momentum" if base.get("momentum") else None
    return dim if dim in base else None


def sample(space, n, seed):
    """n settings {name: value} from a scrambled Sobol sequence: the same (space, n, seed), the same
    settings. Duplicates after rounding are dropped (only possible for tiny ranges)."""
    if not 0 < n <= MAX_SETTINGS:
        raise UserError(f"--trials {n}: give 1 to {MAX_SETTINGS:,} settings per optimizer")
    names = list(space)
    points = torch.quasirandom.SobolEngine(len(names), scramble=True, seed=seed).draw(n, dtype=torch.float64)
    settings, seen = [], set()
    for u in points.tolist():
        setting = {name: space[name].value(x) for name, x in zip(names, u)}
        if tuple(setting.values()) not in seen:
            seen.add(tuple(setting.values()))
            settings.append(setting)
    return settings


def config_fields(setting, base):
    """The RunConfig fields that give a run this setting: lr, weight_decay, eps as they are, betas
    (beta1 and beta2 keep the other half of the optimizer's), and every other name as an --opt entry."""
    fields, rest = {}, dict(setting)
    if "beta1" in rest or "beta2" in rest:
        b1, b2 = base["betas"]
        fields["betas"] = [float(rest.pop("beta1", b1)), float(rest.pop("beta2", b2))]
    for name in ("lr", "weight_decay", "eps"):
        if name in rest:
            fields[name] = float(rest.pop(name))
    if rest:
        fields["opt"] = [f"{name}={value!r}" for name, value in rest.items()]
    return fields


def arguments(setting):
    """The constructor arguments a setting sets (beta1 -> betas), to refuse a pass-through flag that
    would set the same one."""
    return {"betas" if name in ("beta1", "beta2") else name for name in setting}
