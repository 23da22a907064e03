"""Command-line plumbing shared by every script: one-line errors and exit codes.

Bad input is reported as a single `error: ...` line on stderr with a non-zero exit status,
never a traceback. Scripts raise UserError; run_main formats it in one place.
"""
import argparse
import math
import re
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

    def parse_known_args(self, args=None, namespace=None):
        return super().parse_known_args(self._join_negative_numbers(sys.argv[1:] if args is None else list(args)),
                                        namespace)

    def _join_negative_numbers(self, argv):
        """'--lr -1e-3' -> '--lr=-1e-3', so that argparse reads a negative number as the flag's value
        (and its type check gives the real reason) instead of as an unknown flag."""
        out = []
        for arg in argv:
            action = self._option_string_actions.get(out[-1]) if out else None
            if action is not None and action.nargs is None and NEGATIVE_NUMBER.match(arg):
                out[-1] = f"{out[-1]}={arg}"
            else:
                out.append(arg)
        return out


NEGATIVE_NUMBER = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def run_main(main, argv=None):
    """Call main(argv); turn a UserError into one line on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:        # a second Ctrl-C: stop at once; what was saved is whole
        print("\ninterrupted", file=sys.stderr)
        return EXIT_SIGINT


def positive_int(text):
    return _checked(int, text, lambda v: v > 0, "a positive integer")


def seed_int(text):
    return _checked(int, text, lambda v: 0 <= v < 2 ** 63, "a seed in [0, 2**63)")


def non_negative_int(text):
    return _checked(int, text, lambda v: v >= 0, "a whole number >= 0")


def positive_float(text):
    return _checked(float, text, lambda v: 0 < v < math.inf, "a positive number")


def non_negative_float(text):
    return _checked(float, text, lambda v: 0 <= v < math.inf, "a number >= 0")


def finite_float(text):
    return _checked(float, text, math.isfinite, "a finite number")


def _checked(cast, text, ok, what):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value) or value != value:  # value != value catches NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def check_plain_name(flag, name):
    """A folder name inside its parent: not empty, not '.' or '..', no '/' (nothing is written
    outside the folder the user named as the parent)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UserError(f"{flag} {name!r}: give a plain folder name (no '/', not empty, not '.' or '..')")
    return name
