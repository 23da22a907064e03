"""One self-contained HTML page of a study (figures embedded, no script, no network), and a
headless Chromium to look at it; page.py's docstring says what the page holds."""
import base64
import html
import shutil
import subprocess
import tempfile
from pathlib import Path

from optstudy.records import store as records

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f6f6f6;padding:0 .2em}
.note{color:#555;font-size:.9em}"""


def page(title, sections):
    """The whole document: sections are (heading, html) pairs."""
    body = "\n".join(f"<section><h2>{esc(heading)}</h2>\n{content}</section>" for heading, content in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{esc(title)}</h1>\n{body}\n</body></html>\n")


def esc(text):
    return html.escape(str(text))


def table(header, rows):
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(row.get(h, ''))}</td>" for h in header) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(path, caption):
    """A PNG embedded as a data URI, with its caption; nothing if the file is missing."""
    path = Path(path)
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt=\"{esc(caption)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption class=\"note\">{esc(caption)}</figcaption></figure>")


def paragraphs(lines):
    return "".join(f"<p>{esc(line)}</p>" for line in lines if line)


def items(lines):
    return "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>" if lines else ""


def provenance(config, plan):
    """Where and how a sweep's runs were made, from one of its run records and its plan."""
    device, versions, git = (config.get(key) or {} for key in ("device", "versions", "git"))
    cpu = device.get("cpu") or {}
    rows = [("sweep command", plan.get("command", "")),
            ("device", f"{device.get('type', '?')}: {device.get('name', '?')}, CPU capability "
                       f"{cpu.get('capability', '?')}, {device.get('threads', '?')} threads"),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
            ("git commit", f"{git.get('commit', '?')}{' (uncommitted changes)' if git.get('dirty') else ''}"),
            ("precision", str(config.get("precision", {}).get("used", "?"))),
            ("batched", f"{config['batched']['trials']} trials together" if "batched" in config else "no")]
    return table(["what", "value"], [{"what": k, "value": v} for k, v in rows])


def write(path, title, sections):
    records.atomic_write(Path(path), lambda tmp: tmp.write_text(page(title, sections), encoding="utf-8"))
    return path


# Headless Chromium (Debian's package "chromium"); the flags keep it off this machine's closed network
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


def find_browser():
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def run_browser(browser, html_path, *flags):
    """Open the page headless with a fresh profile; returns (stdout, stderr)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags,
                               Path(html_path).resolve().as_uri()], capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr


def console_errors(stderr):
    """The page's own errors in Chromium's log (its D-Bus complaints on a machine without one are not)."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def screenshot(browser, html_path, png_path, width=1100, height=1800):
    """The top of the page as a browser window of this size shows it."""
    _, stderr = run_browser(browser, html_path, f"--screenshot={Path(png_path).resolve()}",
                            f"--window-size={width},{height}")
    return console_errors(stderr)
