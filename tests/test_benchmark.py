import json

from conftest import run_script


def test_benchmark_smoke_prints_every_figure(tmp_path):
    """It runs and reports; speed targets are checked by reading its output, not here."""
    out = tmp_path / "bench.json"
    proc = run_script("benchmark.py", "--tiny", "--steps", "2", "--warmup", "1", "--rounds", "1",
                      "--threads", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr
    for label in ("compute", "pipeline", "tutorial", "pipeline / compute", "pipeline / tutorial",
                  "projected 45-epoch run", "peak resident memory"):
        assert label in proc.stdout
    report = json.loads(out.read_text())
    assert set(report["samples_per_s"]) == {"compute", "pipeline", "tutorial"}
    assert all(v > 0 for v in report["samples_per_s"].values())
    assert report["ratio_pipeline_to_compute"] == report["samples_per_s"]["pipeline"] / report["samples_per_s"]["compute"]
    assert report["peak_rss_mb"] > 0 and report["device"]["type"] == "cpu"
