"""One training run's settings as one frozen, typed object, RunConfig: what train.py's flags say,
resolved once with the workload's defaults (training/flags.py: parse, resolve, render).

Each field declares its roles here, once, and every list of setting names is derived from them:

    EXECUTION  where or how a run executes, not what it computes: not part of its identity; may
               change when it is resumed; runs differing only in these are the same experiment
    RESUMABLE  may change on --resume besides those (a run may be given more epochs)
    SEED       the seed: a plot groups runs that differ only in it (and in length)
    MEMBER     each run of a stack has its own (every other setting the stack's runs share)
    SWEPT      a sweep sets it for every run (its axes, its length, where each record is kept)
    HYPER      resolved into the optimizer's record (the record keeps what was typed, too)
    PROTOCOL   the task a baseline must share to be compared with a run (data, model, length)
    ACTION     what to do with the folder or the command (resume, list), not what the run is: a
               rendered command line never carries it

A field's value is what the flag holds: None where it was not given and the workload or the
optimizer decides. Lists stay lists (betas, --opt), as the records have always kept them.
"""
from dataclasses import asdict, dataclass, field, fields

EXECUTION, RESUMABLE, SEED, MEMBER, SWEPT, HYPER, PROTOCOL, ACTION = (
    "execution", "resumable", "seed", "member", "swept", "hyper", "protocol", "action")


def setting(default, *roles):
    return field(default=default, metadata={"roles": frozenset(roles)})


@dataclass(frozen=True)
class RunConfig:
    workload: str = setting("cifar10-cnn", PROTOCOL)
    list_workloads: bool = setting(False, EXECUTION, ACTION)
    optimizer: str = setting("adam", SWEPT)
    opt: list = setting(None, MEMBER)                   # ["KEY=VALUE", ...]: constructor arguments
    list_optimizers: bool = setting(False, EXECUTION, ACTION)
    epochs: int = setting(None, RESUMABLE, SWEPT, PROTOCOL)
    batch_size: int = setting(None, PROTOCOL)
    lr: float = setting(None, MEMBER, SWEPT, HYPER)
    lr_schedule: str = setting(None, PROTOCOL)
    weight_decay: float = setting(None, MEMBER, SWEPT, HYPER)
    betas: list = setting(None, MEMBER, HYPER)
    eps: float = setting(None, MEMBER, HYPER)
    no_bias_correction: bool = setting(False, MEMBER, HYPER)
    seed: int = setting(0, SEED, MEMBER, SWEPT)
    device: str = setting("auto", EXECUTION)
    dataset: str = setting(None, PROTOCOL)
    data_dir: str = setting(None, PROTOCOL)
    data_root: str = setting(None, EXECUTION)           # the parser's default: <repository>/input/data
    limit_train: int = setting(None, PROTOCOL)
    limit_val: int = setting(None, PROTOCOL)            # --limit-test: it cuts the test split
    val_split: float = setting(None, SWEPT, PROTOCOL)
    dropout: str = setting(None, PROTOCOL)
    dropout_rate: float = setting(0.5, PROTOCOL)
    preprocess: str = setting("standardize", PROTOCOL)
    zca_eps: float = setting(1e-2)
    precision: str = setting("fp32")
    compile: str = setting("off")
    channels_last: bool = setting(True)
    tf32: bool = setting(True)
    stacked_step: bool = setting(False)
    window_batches: int = setting(None)                 # probes.py: accuracy per window of N minibatches
    eval_every_examples: int = setting(None)            # probes.py: the whole-data loss every M examples
    time_steps: bool = setting(False, EXECUTION)        # probes.py: seconds in optimizer.step() alone
    threads: int = setting(None, EXECUTION)
    output_dir: str = setting("outputs", EXECUTION, MEMBER, SWEPT)
    run_name: str = setting(None, EXECUTION, MEMBER, SWEPT)
    resume: bool = setting(False, EXECUTION, MEMBER, SWEPT, ACTION)
    overwrite: bool = setting(False, EXECUTION, MEMBER, SWEPT, ACTION)
    quiet: bool = setting(False, EXECUTION)

    def as_args(self):
        """The settings as the records keep them (config.json's and the checkpoint's "args")."""
        return asdict(self)


def named(role):
    """The names of the settings that have this role, in the order of RunConfig."""
    return tuple(f.name for f in fields(RunConfig) if role in f.metadata["roles"])


SETTINGS = tuple(f.name for f in fields(RunConfig))
EXECUTION_SETTINGS = frozenset(named(EXECUTION))
RESUMABLE_SETTINGS = EXECUTION_SETTINGS | set(named(RESUMABLE))
SEED_GROUPED = RESUMABLE_SETTINGS | set(named(SEED))
MEMBER_SETTINGS = frozenset(named(MEMBER))
SWEPT_SETTINGS = frozenset(named(SWEPT))
HYPER_SETTINGS = frozenset(named(HYPER))
PROTOCOL_SETTINGS = named(PROTOCOL)
ACTION_SETTINGS = frozenset(named(ACTION))
