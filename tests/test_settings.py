"""One resolved config per run: RunConfig's fields are train.py's flags, each with its roles
declared once; every list of setting names is derived from them; the config renders to the
command line that reproduces it and parses back from it."""
import ast
from dataclasses import fields, replace
from pathlib import Path

import pytest

from optstudy.core import settings
from optstudy.core.settings import RunConfig
from optstudy.records import meaning, store
from optstudy.training import flags

SRC = Path(__file__).resolve().parent.parent / "src"


def test_every_flag_is_a_field_with_the_flags_default():
    actions = {a.dest: a for a in flags.build_parser()._actions if a.dest != "help"}
    assert set(actions) == set(settings.SETTINGS)
    for f in fields(RunConfig):
        if f.name != "data_root":                 # the parser's is this checkout's input/data
            assert actions[f.name].default == f.default, f.name


def test_the_lists_of_settings_are_the_roles_declared():
    # what the hand-kept lists held before they were derived: a role dropped from a field shows here
    assert store.EXECUTION_SETTINGS == {"output_dir", "run_name", "resume", "overwrite", "quiet", "threads", "device",
                                        "data_root", "list_optimizers", "list_workloads", "time_steps"}
    assert store.RESUMABLE == store.EXECUTION_SETTINGS | {"epochs"}
    assert store.SEED_GROUPED == store.RESUMABLE | {"seed"}
    assert settings.MEMBER_SETTINGS == {"seed", "lr", "betas", "eps", "weight_decay", "opt", "no_bias_correction",
                                        "output_dir", "run_name", "resume", "overwrite"}
    assert settings.SWEPT_SETTINGS == {"optimizer", "lr", "seed", "epochs", "weight_decay", "val_split", "output_dir",
                                       "run_name", "resume", "overwrite"}
    assert meaning.HYPER_FLAGS == {"lr", "weight_decay", "betas", "eps", "no_bias_correction"}
    assert set(meaning.MUST_MATCH) == {"workload", "dataset", "data_dir", "epochs", "batch_size", "val_split",
                                       "limit_train", "limit_val", "lr_schedule", "dropout", "dropout_rate", "preprocess"}


@pytest.mark.parametrize("argv", [
    [],
    ["--workload", "mnist-logreg", "--optimizer", "sgd", "--lr", "0.1234567890123", "--seed", "7", "--val-split", "0.1"],
    ["--workload", "mnist-vae", "--optimizer", "paper-adam", "--betas", "0", "0.9999", "--no-bias-correction",
     "--opt", "amsgrad=False", "--opt", "foreach=None", "--limit-test", "100", "--no-channels-last", "--quiet",
     "--threads", "1", "--run-name", "x", "--output-dir", "somewhere", "--precision", "bf16"],
    ["--dataset", "synthetic", "--dropout", "none", "--preprocess", "zca", "--zca-eps", "0.05", "--weight-decay", "0"],
])
def test_a_config_renders_to_the_flags_that_parse_back_to_it(argv):
    config = flags.parse(argv)
    assert flags.parse(flags.to_argv(config)) == config
    assert "--resume" not in flags.to_argv(replace(config, resume=True))      # an action, not a setting


def test_resolving_fills_the_workloads_defaults_once():
    config = flags.parse(["--workload", "mnist-vae"])
    assert (config.epochs, config.batch_size, config.dataset, config.lr_schedule) == (100, 100, "mnist", "constant")
    assert flags.resolve(config) == config
    assert flags.parse(["--val-split", "0"]).val_split is None           # 0 = no split: one identity


# The optimizer's own constructor arguments share these names; a list of them names arguments
# (which fused kernel setting, which searched dimension), not the run's settings.
OPTIMIZER_ARGUMENTS = {"lr", "betas", "eps", "weight_decay"}


def literal_setting_lists(tree):
    """Set, list or tuple literals of three or more strings that are all RunConfig field names
    (and not all the optimizer's own argument names)."""
    names = set(settings.SETTINGS)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Set, ast.List, ast.Tuple)) and len(node.elts) >= 3:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(values) == len(node.elts) and set(values) <= names and not set(values) <= OPTIMIZER_ARGUMENTS:
                yield node.lineno, values


def test_no_module_names_settings_by_hand():
    found = [(str(f.relative_to(SRC)), line, values) for f in SRC.rglob("*.py") if f.name != "settings.py"
             for line, values in literal_setting_lists(ast.parse(f.read_text()))]
    assert not found, found
    assert list(literal_setting_lists(ast.parse('X = {"lr", "seed", "epochs"}')))    # the check can fail
    assert settings.ACTION_SETTINGS == {"resume", "overwrite", "list_optimizers", "list_workloads"}
