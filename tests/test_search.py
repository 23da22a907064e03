"""Tuning beyond the learning rate: search spaces sampled by a seeded Sobol sequence, a sweep of
--trials that re-runs idempotently, and performance profiles across workloads."""
import json
import math

import pytest

from optstudy.records import store as records
from optstudy.experiments import space
from optstudy.analysis import stats
import sweep
from optstudy.experiments import sweep as sweeping
from optstudy.core.cli import UserError, run_main
from conftest import assert_one_line_error, run_in_process, run_script

TINY = ["--workload", "mnist-logreg", "--dataset", "synthetic", "--limit-train", "256", "--limit-val", "128",
        "--batch-size", "64", "--threads", "1", "--epochs", "2", "--no-report"]
ADAM_SGD_RMSPROP = {"adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                    "sgd": {"lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
                    "rmsprop": {"lr": 1e-3, "eps": 1e-8, "momentum": 0, "weight_decay": 0.0}}


def built_in(optimizer, dims):
    return space.space_for(optimizer, "builtin", dims, ADAM_SGD_RMSPROP[optimizer], (1e-4, 1.0))


def test_the_sampler_is_seeded_stays_in_range_and_names_what_it_ran():
    dims = built_in("adam", ("lr", "momentum", "eps", "weight_decay"))
    a, b = space.sample(dims, 16, seed=0), space.sample(dims, 16, seed=0)
    assert a == b and a != space.sample(dims, 16, seed=1)
    assert len(a) == 16 and all(set(s) == {"lr", "beta1", "eps", "weight_decay"} for s in a)
    for name, dim in dims.items():
        values = [s[name] for s in a]
        assert all(dim.low <= v <= dim.high for v in values), name
        assert len(set(values)) == 16                     # quasi-random: no two trials share a value
    assert all(float(f"{s['lr']:.3g}") == s["lr"] and float(f"{1 - s['beta1']:.3g}") == pytest.approx(1 - s["beta1"])
               for s in a)                                # 3 significant digits (of 1 - beta1)
    assert space.sample(dims, 8, seed=0) == a[:8]         # a smaller budget is a prefix of a larger one
    folder = records.setting_folder(a[0])
    assert folder.startswith(f"lr_{a[0]['lr']:g}__beta1_") and "__eps_" in folder


def test_log_scales_spread_evenly_in_log_space():
    lr = space.Dim(1e-4, 1.0, "log")
    assert lr.value(0.0) == 1e-4 and lr.value(0.5) == 0.01
    beta = space.Dim(0.5, 0.999, "log1m")                 # 1 - beta from 0.001 to 0.5
    assert beta.value(0.0) == 0.999 and beta.value(1 - 1e-12) == pytest.approx(0.5)
    assert space.Dim(0.0, 1.0, "linear").value(0.25) == 0.25


def test_built_in_dimensions_follow_each_optimizer():
    dims = ("lr", "momentum", "eps", "weight_decay")
    assert list(built_in("adam", dims)) == ["lr", "beta1", "eps", "weight_decay"]
    assert list(built_in("sgd", dims)) == ["lr", "momentum", "weight_decay"]         # no eps to tune
    assert list(built_in("rmsprop", dims)) == ["lr", "eps", "weight_decay"]         # it uses no momentum
    assert [space.parse("auto", n)[1] for n in (5, 16, 40, 100)] == [
        ("lr",), ("lr", "momentum"), ("lr", "momentum", "eps"), dims]


def test_a_setting_keeps_the_other_half_of_betas_and_passes_the_rest_as_opt():
    fields = space.config_fields({"lr": 0.01, "beta1": 0.95, "momentum": 0.8}, {"betas": (0.9, 0.99)})
    assert fields == {"betas": [0.95, 0.99], "lr": 0.01, "opt": ["momentum=0.8"]}


def test_space_files_json_and_toml(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"*": {"lr": {"low": 1e-3, "high": 1e-1}},
                                                 "sgd": {"lr": {"low": 1e-2, "high": 1.0},
                                                         "momentum": {"low": 0.5, "high": 0.99, "scale": "log1m"}}}))
    (tmp_path / "s.toml").write_text('[adam.lr]\nlow = 1e-3\nhigh = 1e-1\nscale = "log"\n')
    kind, spec = space.parse(str(tmp_path / "s.json"), 8)
    assert kind == "file" and set(space.space_for("sgd", kind, spec, {}, None)) == {"lr", "momentum"}
    assert space.space_for("adam", kind, spec, {}, None) == {"lr": space.Dim(1e-3, 1e-1, "log")}
    kind, spec = space.parse(str(tmp_path / "s.toml"), 8)
    assert space.space_for("adam", kind, spec, {}, None)["lr"].high == 1e-1
    with pytest.raises(UserError, match="no space for 'sgd'"):
        space.space_for("sgd", kind, spec, {}, None)


@pytest.mark.parametrize("text, fragment", [
    ('{"adam": {"lr": {"low": 1, "high": 0.1}}}', "low < high"),
    ('{"adam": {"lr": {"low": 0, "high": 0.1}}}', "low > 0"),
    ('{"adam": {"lr": {"low": 1e-3, "high": 0.1}, "beta1": {"low": 0.5, "high": 1, "scale": "log1m"}}}', "high < 1"),
    ('{"adam": {"lr": {"low": 1e-3, "high": 0.1, "scale": "cubic"}}}', "choose from log, linear, log1m"),
    ('{"adam": {"lr": [1e-3, 0.1]}}', "give {"),
    ('{"adam": {"eps": {"low": 1e-3, "high": 0.1}}}', "has no lr"),
    ('{"adam": ', "not valid JSON"),
])
def test_a_bad_space_file_is_one_line(tmp_path, text, fragment):
    (tmp_path / "s.json").write_text(text)
    proc = run_in_process("sweep.py", "--name", "x", "--output-dir", tmp_path, "--optimizers", "adam", "--trials", "2",
                          "--space", tmp_path / "s.json", *TINY)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "x").exists()


def test_bad_search_flags_are_one_line(tmp_path):
    def refused(*argv):
        with pytest.raises(UserError) as err:
            sweeping.run_sweep(["--name", "x", "--output-dir", str(tmp_path), *argv, *TINY])
        return str(err.value)
    assert "needs --trials" in refused("--space", "lr,eps")
    assert "comma list" in refused("--trials", "2", "--space", "lr,beta9")
    assert "also set by a flag" in refused("--trials", "2", "--space", "lr,eps", "--eps", "1e-3")
    assert "range of rates" in refused("--trials", "2", "--lrs", "1e-3")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    argv = ["--name", "s", "--output-dir", str(out), "--optimizers", "adam", "sgd", "--trials", "3",
            "--space", "lr,momentum", "--lrs", "1e-3:1", "--seeds", "0", "1", *TINY]
    assert run_main(sweep.main, argv) == 0
    return out / "s", argv


def test_a_search_runs_its_settings_and_records_them_in_the_path(searched):
    sweep_dir, _ = searched
    plan = json.loads((sweep_dir / "sweep.json").read_text())
    assert plan["trials"] == 3 and "lrs" not in plan
    assert plan["space"]["adam"] == {"lr": [1e-3, 1.0, "log"], "beta1": [0.5, 0.999, "log1m"]}
    assert plan["space"]["sgd"] == {"lr": [1e-3, 1.0, "log"], "momentum": [0.5, 0.999, "log1m"]}
    for opt, settings in plan["settings"].items():
        assert settings == space.sample({n: space.Dim(*d) for n, d in plan["space"][opt].items()}, 3, 0)
        for setting in settings:
            config = records.load_json(records.sweep_run_dir(sweep_dir, opt, setting, 0) / "config.json")
            hyper = config["optimizer"]["hyperparameters"]
            assert hyper["lr"] == setting["lr"]
            if opt == "adam":
                assert hyper["betas"] == [setting["beta1"], 0.999]
            else:
                assert hyper["momentum"] == setting["momentum"] and "momentum" not in config["optimizer"]["fixed"]
    for opt, pick in plan["best"].items():               # the pick, re-run with the second seed
        assert pick in plan["settings"][opt] and plan["best_lr"][opt] == pick["lr"]
        assert records.has_metrics(records.sweep_run_dir(sweep_dir, opt, pick, 1))


def test_a_search_rerun_trains_nothing_new_and_a_changed_budget_is_refused(searched, capsys):
    sweep_dir, argv = searched
    before = {d: (d / records.METRICS).stat().st_mtime_ns for d in records.find_runs([sweep_dir])}
    assert run_main(sweep.main, argv) == 0
    assert "0 trained" in capsys.readouterr().out
    assert {d: (d / records.METRICS).stat().st_mtime_ns for d in records.find_runs([sweep_dir])} == before
    with pytest.raises(UserError, match="other settings"):
        sweeping.run_sweep([*argv, "--trials", "4"])


def test_the_report_of_a_search_names_the_setting_and_draws_tuning_curves(searched):
    sweep_dir, _ = searched
    import report
    assert run_main(report.main, [str(sweep_dir)]) == 0
    table = (sweep_dir / "results.md").read_text()
    assert "3 quasi-random (Sobol, sampler seed 0) trials per optimizer" in table and "beta1 0.5..0.999 log1m" in table
    assert "| optimizer | best_lr | best_setting | weight_decay |" in table
    assert (sweep_dir / "tuning_curves.png").stat().st_size > 5000
    assert "best\\_setting" in (sweep_dir / "results.tex").read_text()
    assert len((sweep_dir / "runs.csv").read_text().splitlines()) == 1 + 8 * 3     # 8 runs x epochs 0..2


def test_performance_profiles_worked_by_hand():
    times = {"w1": {"a": 2.0, "b": 4.0}, "w2": {"a": math.inf, "b": 3.0}, "w3": {"a": math.inf, "b": math.inf}}
    ratios = stats.performance_ratios(times)
    assert ratios["w1"] == {"a": 1.0, "b": 2.0} and ratios["w2"] == {"a": math.inf, "b": 1.0}
    assert ratios["w3"] == {"a": math.inf, "b": math.inf}          # nobody solved it: it counts for nobody
    taus = [1.0, 1.5, 2.0, 4.0]
    assert stats.performance_profile(ratios, "a", taus) == [1 / 3, 1 / 3, 1 / 3, 1 / 3]
    assert stats.performance_profile(ratios, "b", taus) == [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    assert stats.performance_profile(ratios, "c", taus) == [0, 0, 0, 0]         # absent: never reaches it
    # b: 1/3 on [1, 2), 2/3 on [2, 4]: the trapezoid over these four points is (0.5*1/3 + 0.5*1/2 + 2*2/3) / 3
    assert stats.profile_score(stats.performance_profile(ratios, "b", taus), taus) == pytest.approx(
        (0.5 * 1 / 3 + 0.5 * (1 / 3 + 2 / 3) / 2 + 2 * 2 / 3) / 3)


def test_a_study_across_sweeps_writes_one_table_and_the_profiles(searched, tmp_path):
    sweep_dir, argv = searched
    import report
    other = ["--name", "bow", "--output-dir", str(sweep_dir.parent), "--optimizers", "adam", "sgd", "--lrs",
             "1e-2", "--seeds", "0", "1", *TINY[2:], "--workload", "imdb-bow-logreg"]
    assert run_main(sweep.main, other) == 0
    assert run_main(report.main, [str(sweep_dir), str(sweep_dir.parent / "bow"), "--study-dir", str(tmp_path),
                                  "--html", str(tmp_path / "study.html")]) == 0
    check_page(tmp_path / "study.html")
    table = (tmp_path / "study.md").read_text()
    assert "| mnist-logreg |" in table and "| imdb-bow-logreg |" in table and "Performance-profile score" in table
    assert (tmp_path / "study.csv").read_text().startswith("workload,sweep,target,seeds,adam,sgd")
    assert (tmp_path / "performance_profile.png").stat().st_size > 5000
    assert (tmp_path / "win_rate.png").stat().st_size > 5000
    assert "Win rates" in table and "| adam | - | " in table and " of 4 |" in table     # 2 workloads x 2 seeds
    assert (tmp_path / "study_runs.csv").read_text().count("\n") > 8 * 3
    proc = run_script("report.py", sweep_dir, sweep_dir.parent / "bow")
    assert_one_line_error(proc, "--study-dir")


def check_page(path):
    """Self-contained: every image embedded, nothing fetched; the study's and each sweep's parts there."""
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.sources, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.sources += [v for k, v in attrs if k in ("src", "href")]

        def handle_data(self, data):
            self.text.append(data)
    parsed = Page()
    parsed.feed(path.read_text())
    text = " ".join(parsed.text)
    assert parsed.tags.count("img") >= 2 + 2 * 4 and parsed.tags.count("table") >= 2 + 2 * 2
    assert all(src.startswith("data:image/png;base64,") for src in parsed.sources)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    for words in ("Across workloads", "Sweep s: results", "Sweep bow: figures", "git commit", "CPU capability",
                  "held-out validation", "paired"):
        assert words in text, words
