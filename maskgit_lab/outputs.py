"""Where commands may write: never into the shipped ``data/``, and into an output folder only
when it is empty or holds the same command's earlier output.

A command that writes a folder of results (``inpaint``, ``demo``) checks it first, claims it
when its results are ready to write (so a failure before leaves the folder as it was): the claim
leaves a marker file naming the command, and ``finish`` lists in it what the command wrote.
A later run of the same command removes exactly those files before writing, so a folder never
mixes two runs (``fid`` would score the mix). A folder holding anything else is refused unless
``--overwrite`` says to clear its images. The marker also records what the results were made
from, so ``fid`` can warn when it scores them against another test set.
"""

import json
from pathlib import Path
from typing import Optional

SHIPPED_DATA = Path(__file__).resolve().parent.parent / "data"  # the course's data set and checkpoints
MARKER = ".maskgit-lab-output.json"


def inside_shipped_data(path) -> bool:
    path = Path(path).resolve()
    return path == SHIPPED_DATA or SHIPPED_DATA in path.parents


def refuse_shipped_data(path, what: str, fix: str):
    """Raise if ``path`` lies in ``data/``: the shipped files change only through their own commands."""
    if inside_shipped_data(path):
        raise ValueError(f"{what} {path} is inside {SHIPPED_DATA} (the shipped data and checkpoints); {fix}")


def read_marker(folder) -> Optional[dict]:
    """The marker of a claimed folder, or None when there is none (or it is unreadable)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "command" in marker else None


class OutputFolder:
    """A results folder claimed by one command; see the module docstring."""

    def __init__(self, path, command: str, overwrite: bool = False, **made_from):
        """Check the folder (nothing is written yet): refuses data/, a file, or other files without ``overwrite``."""
        self.path, self.command, self.overwrite, self.made_from = Path(path), command, overwrite, made_from
        refuse_shipped_data(self.path, "output folder", "write the results elsewhere, e.g. --out artifacts/" + command)
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(f"--out {self.path} is a file, not a folder; pick a folder name")
        self._entries()

    def _entries(self) -> tuple:
        """(this command's earlier entries, other entries); raises on others without ``overwrite``."""
        if not self.path.is_dir():
            return [], []
        marker = read_marker(self.path)
        entries = [p for p in self.path.iterdir() if p.name != MARKER]
        ours = marker is not None and marker["command"] == self.command
        listed = None if not ours or marker.get("files") is None else set(marker["files"])
        foreign = [p for p in entries if not ours or (listed is not None and p.name not in listed)]
        if foreign and not self.overwrite:
            raise FileExistsError(
                f"--out {self.path} already holds files this command did not write ({foreign[0].name}, "
                f"{len(foreign)} in all); pick an empty folder, or pass --overwrite to clear its images first")
        return [p for p in entries if p not in foreign], foreign

    def claim(self) -> Path:
        """Remove this command's earlier files (and, with ``overwrite``, the other images); mark the folder."""
        from maskgit_lab.data import IMAGE_SUFFIXES  # data imports torch; the grader's CLI imports this module without it

        own, foreign = self._entries()
        for entry in own + [p for p in foreign if p.suffix.lower() in IMAGE_SUFFIXES]:
            if entry.is_file():
                entry.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.kept = {p.name for p in self.path.iterdir()} - {MARKER}  # not ours: never listed, never removed
        self._write_marker(files=None)  # None: written since the claim, so everything new is ours
        return self.path

    def _write_marker(self, files):
        marker = {"command": self.command, "files": files, **self.made_from}
        (self.path / MARKER).write_text(json.dumps(marker, indent=1, default=str) + "\n")

    def finish(self) -> Path:
        """List what the command wrote, so the next run removes exactly that."""
        written = sorted({p.name for p in self.path.iterdir()} - self.kept - {MARKER})
        self._write_marker(files=written)
        return self.path
