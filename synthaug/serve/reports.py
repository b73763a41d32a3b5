"""Experiment reports under --runs-root, found by the server and handed out by name only.

A request names a run; the name is a key into what the scan found, never a path: `../../etc` is simply
not a key. Symlinks that lead out of the root are skipped at scan time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.report.answer import read_answer

REPORT_FILE = "report.html"
MAX_DEPTH = 3  # runs/demo/report.html is depth 1; runs/studies/cifar/report.html depth 2


@dataclass(frozen=True)
class RunReport:
    name: str  # the run folder relative to the root, with "/" (what the API takes)
    path: Path  # its report.html (resolved, inside the root)
    modified: float  # report.html's mtime, seconds since the epoch

    def describe(self) -> dict[str, Any]:
        """Name, time, the report's URL, and its answer sentence and forest plot's URL (None for runs whose
        report predates them)."""
        when = dt.datetime.fromtimestamp(self.modified, dt.timezone.utc).isoformat(timespec="seconds")
        answer = read_answer(self.path.parent)
        return {"name": self.name, "modified": when, "report": f"/api/runs/{self.name}/report",
                "answer": answer["answer"] if answer else None,
                "forest": f"/api/runs/{self.name}/forest.png" if answer and answer["forest"] else None}

    def forest(self) -> Path | None:
        """The forest plot's PNG, when the report has one inside the run folder."""
        answer = read_answer(self.path.parent)
        return answer["forest"] if answer else None


def scan_reports(root: str | Path | None) -> dict[str, RunReport]:
    """Every run folder (up to MAX_DEPTH deep) holding a report.html, newest first."""
    if root is None:
        return {}
    root = Path(root).resolve()
    if not root.is_dir():
        return {}
    found: list[RunReport] = []
    frontier = [root]
    for _ in range(MAX_DEPTH):
        next_frontier = []
        for folder in frontier:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for child in children:
                real = child.resolve()
                if not real.is_relative_to(root):  # a symlink out of the root
                    continue
                report = real / REPORT_FILE
                if report.is_file():
                    found.append(RunReport(child.relative_to(root).as_posix(), report, report.stat().st_mtime))
                next_frontier.append(child)
        frontier = next_frontier
    found.sort(key=lambda r: (-r.modified, r.name))
    return {r.name: r for r in found}
