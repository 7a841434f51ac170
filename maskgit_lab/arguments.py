"""The argument validator shared by the course's CLI (``maskgit_lab.cli``) and the grader's (``autograder.options``).

One argparse type per kind of value: an integer or a finite number in its domain, ``true``/``false``,
a path that must exist as a file or a folder, and a file or folder to write (writable, and outside the
shipped data/, which only its own commands change). A bad value gets one
line naming the fix (``Parser``) and exit code 2, before anything runs. No torch here: the grader's
command line imports this without the model code.
"""

import argparse
import math
import os
from pathlib import Path

from maskgit_lab.outputs import inside_shipped_data

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block): the line names the fix."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(low: int, what: str = "the value"):
    """An integer ≥ ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{what} must be an integer ≥ {low}, got {text!r}")
        return value

    return parse


def number(low: float = 0.0, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """A finite float in [low, high]; an open end excludes its bound."""
    if high < math.inf:
        domain = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    else:
        domain = f"a finite number {'>' if low_open else '≥'} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = math.isfinite(value) and (value > low if low_open else value >= low) and \
            (value < high if high_open else value <= high)
        if not inside:
            raise argparse.ArgumentTypeError(f"must be {domain}, got {text!r}")
        return value

    return parse


def boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"must be true or false, got {text!r}")
    return text.lower() == "true"


def existing(kind: str):
    """A path that exists and is a ``"file"`` or a ``"folder"``."""

    def parse(text: str) -> Path:
        path = Path(text)
        if not (path.is_file() if kind == "file" else path.is_dir()):
            found = "missing" if not path.exists() else "a folder" if path.is_dir() else "a file"
            raise argparse.ArgumentTypeError(f"{path} is {found}; give the path of an existing {kind}")
        return path

    return parse


existing_file, existing_dir = existing("file"), existing("folder")


def writable(path: Path) -> Path:
    """``path`` (a file or a folder to write, new or not) if it can be written: the nearest folder that
    exists on its way must be one this process may write into, on a file system mounted read-write.
    Checked before any work, so a long run never ends in a refused write; nothing is written to check."""
    base = path if path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"{path} cannot be written: {base} is a file, not a folder; give another path")
    if os.statvfs(base).f_flag & os.ST_RDONLY or not os.access(base, os.W_OK):
        raise argparse.ArgumentTypeError(f"{path} cannot be written: {base} is read-only (a read-only file system "
                                         f"or no write permission); give a path you can write to")
    return path


def file_to_write(name: str, fix: str):
    """A file to write, new or replaced: not a folder (``name``: a file name to suggest inside it), not in the
    shipped data/ (``fix`` says where instead), writable."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name such as {path / name}")
        if inside_shipped_data(path):
            raise argparse.ArgumentTypeError(f"{path} is inside the shipped data/; {fix}")
        return writable(path)

    return parse


def folder_to_write(fix: str):
    """A folder to write into, new or not: not a file, not in the shipped data/ (``fix`` says where instead), writable."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file; give a folder")
        if inside_shipped_data(path):
            raise argparse.ArgumentTypeError(f"{path} is inside the shipped data/; {fix}")
        return writable(path)

    return parse
