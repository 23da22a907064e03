"""What the records mean: one definition, read by the sweep, the report, the plot, the export and
the baselines alike.

- a sweep's plan (sweep.json): its settings per optimizer, its picks, the rule that picks;
- whether a run of a plan is finished;
- a run's identity for drawing (its facets: what it computes, less its seed and length) and label;
- whether a baseline run is comparable with a run of the user's.

Pure reading: no torch, no training code (store.py is the only module it reads files through).
"""
from collections import namedtuple
from pathlib import Path

from optstudy.core import settings
from optstudy.core.cli import UserError
from optstudy.records import store

# One record of a sweep: which optimizer, at which setting, with which seed, and its metrics.
Record = namedtuple("Record", "optimizer setting seed metrics")
PLAN = "sweep.json"
# Entries of a plan that are bookkeeping, not the plan: a re-run of the same sweep may change them.
PLAN_BOOKKEEPING = {"name", "command", "created", "updated", "best_lr", "best", "widened"}
# Entries a re-run may grow without touching a saved run: more seeds after the same first (picking)
# seed, a larger --widen bound (the rates it adds are kept in "widened").
PLAN_EXTENSIBLE = {"seeds", "widen"}


# ---------------------------------------------------------------- a sweep's plan and its picks

def load_plan(sweep_dir, rerun=False):
    """A sweep's plan (sweep.json), its shape checked here, once: one line naming the file and what
    is wrong. The sweep's re-run also needs its bookkeeping (when it was created)."""
    path = Path(sweep_dir) / PLAN
    if not path.is_file():
        raise UserError(f"{sweep_dir}: no {PLAN} here (not a sweep folder made by src/sweep.py)")
    plan = store.load_json(path)
    wrong = plan_problem(plan, rerun)
    if wrong:
        raise UserError(f"{path}: {wrong} (not a plan as src/sweep.py writes it; restore it, or use another --name)")
    return plan


def plan_problem(plan, rerun=False):
    """What is wrong with a plan's shape, in words, or None."""
    if not isinstance(plan, dict):
        return f"it is a JSON {type(plan).__name__}, not an object"
    required = ("name", "optimizers", "seeds", "epochs", "select", "weight_decay", "command", *(("created",) if rerun else ()))
    missing = [key for key in required if key not in plan]
    if missing:
        return f"it has no {', '.join(missing)}"
    checks = {"name": isinstance(plan["name"], str), "command": isinstance(plan["command"], str),
              "created": isinstance(plan.get("created", ""), str),
              "optimizers": is_list_of(plan["optimizers"], str) and len(set(plan["optimizers"])) == len(plan["optimizers"]),
              "seeds": is_list_of(plan["seeds"], int) and len(set(plan["seeds"])) == len(plan["seeds"]),
              "epochs": isinstance(plan["epochs"], int) and not isinstance(plan["epochs"], bool) and plan["epochs"] > 0,
              "select": plan["select"] in ("train_loss", "val_acc"), "weight_decay": store.is_number(plan["weight_decay"])}
    wrong = [key for key, ok in checks.items() if not ok]
    if wrong:
        return f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not what a plan holds"
    if "settings" in plan:
        settings = plan["settings"]
        if not (isinstance(settings, dict) and set(settings) == set(plan["optimizers"])
                and all(is_list_of(v, dict) for v in settings.values())):
            return "its settings are not {optimizer: [setting]} for its optimizers"
    elif not (is_list_of(plan.get("lrs"), (int, float)) and all(v > 0 for v in plan["lrs"])):
        return "it has neither settings nor a list of positive lrs"
    widened = plan.get("widened", {})
    if not (isinstance(widened, dict) and all(is_list_of(v, (int, float)) and all(r > 0 for r in v)
                                              for v in widened.values())):
        return "its widened is not {optimizer: [positive rate]}"
    best = plan.get("best")
    if best is not None and not (isinstance(best, dict) and all(v is None or isinstance(v, dict) for v in best.values())):
        return "its best is not {optimizer: setting or null}"
    return None


def is_list_of(value, kind):
    return (isinstance(value, list) and bool(value)
            and all(isinstance(v, kind) and not isinstance(v, bool) for v in value))


def planned_settings(plan):
    """{optimizer: [setting]}: the searched settings, or the grid's rates as {'lr': rate}, with the
    rates --widen added beyond the grid's ends for that optimizer."""
    if plan.get("settings"):
        return plan["settings"]
    widened = plan.get("widened") or {}
    return {opt: [{"lr": lr} for lr in sorted({*plan["lrs"], *widened.get(opt, [])})] for opt in plan["optimizers"]}


def extends(saved, plan, key):
    """A re-run's value of an extensible entry keeps what the saved one ran: the seeds start with the
    saved seeds; a --widen bound of any size (missing in older plans: 0)."""
    if key == "seeds":
        return plan["seeds"][:len(saved["seeds"])] == saved["seeds"]
    return key == "widen"


def best_settings(plan):
    """{optimizer: its picked setting, or None}, also from sweeps older than --trials (best_lr only)."""
    if "best" in plan:
        return plan["best"]
    return {opt: None if lr is None else {"lr": lr} for opt, lr in plan.get("best_lr", {}).items()}


def final_metric(metrics, select):
    """The selection rule, lower is better: the final train loss, or minus the best validation
    accuracy. Diverged runs never win."""
    if metrics["status"] == "diverged":
        return float("inf")
    return metrics["train_loss"][-1] if select == "train_loss" else -max(metrics["val_acc"])


def final_value(metrics, select):
    """The selection metric at the last epoch, lower is better (-val_acc, or train_loss): what a
    win rate compares. Diverged runs lose (inf)."""
    if metrics["status"] == "diverged":
        return float("inf")
    return metrics["train_loss"][-1] if select == "train_loss" else -metrics["val_acc"][-1]


def run_state(directory, epochs, trust_pickles=False):
    """'finished' (complete at the planned length, or diverged), else what is wrong with the run.
    It reads the run as every reader does (store.load_run: config.json and the metrics, one run)."""
    try:
        metrics = store.load_run(directory, trust_pickles)[1]
    except UserError:
        return "has no readable record"
    return state(metrics, epochs)


def state(metrics, epochs):
    """run_state of a record already read: 'finished', or what it is instead."""
    if metrics["status"] == "diverged":
        return "finished"
    if metrics["status"] != "complete":
        return f"is {metrics['status']} at epoch {metrics['epoch'][-1] if metrics['epoch'] else 0}"
    if metrics["epoch"][-1] != epochs:
        return f"has {metrics['epoch'][-1]} epochs, the plan {epochs}"
    return "finished"


def finished(runs, plan):
    """The Records of the runs finished at the plan's length (complete, or diverged): the only runs
    a final value, a verdict, a curve or an epochs-to-target is made of."""
    return [r for r in runs if state(r.metrics, plan["epochs"]) == "finished"]


def collect(sweep_dir, plan, trust_pickles=False):
    """[Record] for every run of the plan that has a record."""
    runs = []
    for opt, planned in planned_settings(plan).items():
        for setting in planned:
            for seed in plan["seeds"]:
                directory = store.sweep_run_dir(sweep_dir, opt, setting, seed)
                if store.has_metrics(directory):
                    runs.append(Record(opt, setting, seed, store.load_run(directory, trust_pickles)[1]))
    return runs


def at_picks(runs, plan):
    picks = best_settings(plan)
    return [r for r in runs if r.setting == picks.get(r.optimizer)]


def first_seed(runs, plan, opt):
    """The optimizer's stage-1 runs: every setting, the first seed."""
    return [r for r in runs if r.optimizer == opt and r.seed == plan["seeds"][0]]


def setting_words(setting):
    """{'lr': 0.001, 'momentum': 0.9} -> 'lr=0.001, momentum=0.9'."""
    return ", ".join(f"{k}={v:.6g}" for k, v in setting.items())


# ---------------------------------------------------------------- a run's identity and label

# Flags whose resolved values the optimizer record holds (the record's args keep what was typed).
HYPER_FLAGS = settings.HYPER_SETTINGS


def facets(config):
    """What a run computes, less its seed and length: the optimizer's resolved hyperparameters and
    every identifying setting (store.SEED_GROUPED is the one list of what does not count)."""
    args = store.identity(config["args"], store.SEED_GROUPED | HYPER_FLAGS)
    args.setdefault("workload", "cifar10-cnn")          # records made before workloads existed
    return {**args, **config["optimizer"]["hyperparameters"], "optimizer": config["optimizer"]["name"]}


def short(value):
    """A setting's value for a label: 6 significant digits (figures round further, to 3)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(short, value))
    return str(value)


# ---------------------------------------------------------------- comparability with a baseline

# The task a baseline must share with a run to be compared with it (the PROTOCOL role).
MUST_MATCH = settings.PROTOCOL_SETTINGS
# Where results may differ by a little for reasons outside the study: said, not refused.
WARN_IF = {"torch version": lambda c: (c.get("versions") or {}).get("torch"),
           "precision": lambda c: (c.get("precision") or {}).get("used"),
           "device type": lambda c: (c.get("device") or {}).get("type")}


def comparable(baseline_runs, reference):
    """(the baseline runs comparable with the reference run's config, one line per kind of
    difference: baselines left out, or drawn with a warning)."""
    kept, left_out, flagged = [], {}, {}
    for run in baseline_runs:
        config = run[1]
        wrong = tuple(f"{k} {config['args'].get(k)} (runs: {reference['args'].get(k)})"
                      for k in MUST_MATCH if config["args"].get(k) != reference["args"].get(k))
        if wrong:
            left_out[wrong] = left_out.get(wrong, 0) + 1
            continue
        kept.append(run)
        warn = tuple(f"{what} {get(config)} (runs: {get(reference)})" for what, get in WARN_IF.items()
                     if get(config) != get(reference))
        if warn:
            flagged[warn] = flagged.get(warn, 0) + 1
    notes = [f"{n} baseline run(s) left out, not comparable: {'; '.join(w)}" for w, n in left_out.items()]
    notes += [f"warning: {n} baseline run(s) drawn though made with another {'; '.join(w)}" for w, n in flagged.items()]
    return kept, notes


# What must agree for a seed to mean the same initialisation and data order on both sides: the seed
# sets the model's initial weights (torch.manual_seed before the model is built) and the data order
# (a generator seeded with it), alike for every optimizer, batched or not; the validation split is a
# fixed subset (data/datasets.py). So the same model on the same data, cut the same way, suffices.
PAIRING = {"workload": lambda c: c["args"].get("workload"), "data": lambda c: (c.get("data") or {}).get("source"),
           "data sizes": lambda c: tuple((c.get("data") or {}).get(k) for k in ("train_size", "val_size", "test_size")),
           "model": lambda c: ((c.get("model") or {}).get("name"), (c.get("model") or {}).get("parameters")),
           "batch size": lambda c: c["args"].get("batch_size")}


def seed_pairing(baseline, reference):
    """None where a seed of the baseline's run means what the same seed of the reference run means
    (the same initial weights and data order), else why not, in words. A field a record lacks
    (an older record) is not held against it. Data sources are compared by dataset only: the
    same files under another --data-root are the same data."""
    wrong = []
    for what, get in PAIRING.items():
        a, b = get(baseline), get(reference)
        if what == "data":
            a, b = (str(v).partition(":")[0] if v else None for v in (a, b))
        if a is not None and b is not None and a != b and a != (None,) * 3 and b != (None,) * 3:
            wrong.append(f"{what} {short(a) if not isinstance(a, tuple) else a} (runs: {b})")
    return "; ".join(wrong) or None


def machine(config):
    """What a run's seconds were measured on: (device, CPU capability, threads)."""
    device = config.get("device") or {}
    return device.get("name") or device.get("type"), (device.get("cpu") or {}).get("capability"), device.get("threads")


def timing_words(config):
    """Where a run's seconds come from: 'AMD EPYC (AVX2), 1 thread, batched x3'. A batched run's
    seconds are its whole batch's."""
    name, capability, threads = machine(config)
    batched = (config.get("batched") or {}).get("trials")
    return (f"{name or '?'}{f' ({capability})' if capability else ''}, {threads or '?'} thread(s)"
            f"{f', batched x{batched}' if batched else ', one run at a time'}")
