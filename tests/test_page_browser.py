"""Opt-in (-m slow): the study page as a person sees it, in a headless Chromium, where one is
installed (Debian's chromium); skipped cleanly where none is."""
import shutil
import subprocess

import pytest

import page

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.mark.slow
def test_the_page_renders_in_a_headless_browser_without_console_errors(tmp_path):
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip("no Chromium on this machine")
    png = tmp_path / "figure.png"
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(png)
    html = tmp_path / "page.html"
    page.write(html, "test page", [("a table", page.table(["a", "b"], [{"a": 1, "b": 2}])),
                                   ("a figure", page.image(png, "a line"))])
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           f"--screenshot={shot}", "--window-size=1200,900", html.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000, proc.stderr[-2000:]
    assert "Uncaught" not in proc.stderr and ":ERROR:CONSOLE" not in proc.stderr
