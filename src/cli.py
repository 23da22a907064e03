"""Command-line plumbing shared by every script: one-line errors and exit codes.

Bad input is reported as a single `error: ...` line on stderr with a non-zero exit status,
never a traceback. Scripts raise UserError; run_main formats it in one place.
"""
import argparse
import sys

EXIT_OK = 0
EXIT_USAGE = 2        # bad flags, bad data, missing files: anything the user can fix
EXIT_DIVERGED = 3     # the training loss became NaN or inf; the record says where
EXIT_SIGINT = 130     # Ctrl-C: the last complete epoch is kept, resume with --resume
EXIT_SIGTERM = 143    # SIGTERM (pre-emption): as Ctrl-C


class UserError(Exception):
    """A problem the user can fix; shown as one line, without a traceback."""


class Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line (argparse prints the usage block first), and no
    abbreviated flags: --lr must never silently mean the sweep's --lrs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def run_main(main, argv=None):
    """Call main(argv); turn a UserError into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


def positive_int(text):
    return _checked(int, text, lambda v: v > 0, "a positive integer")


def positive_float(text):
    return _checked(float, text, lambda v: v > 0, "a positive number")


def non_negative_float(text):
    return _checked(float, text, lambda v: v >= 0, "a number >= 0")


def _checked(cast, text, ok, what):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value) or value != value:  # value != value catches NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value
