"""Which log lines belong to the run asked for: by its id, or with its whole tree."""

from __future__ import annotations

from ._lines import UUID, Line

__all__ = ["Matcher"]


class Matcher:
    """Decide line by line whether a line is the run's (or, with ``tree``, a descendant's).

    JSON lines match by their ``run_id`` field; text lines (and JSON lines without one) by the
    run id anywhere in the line. A prefix is resolved to the full id before the scan.

    In a tree, a JSON line is a descendant's when its ``root_run_id`` is the run, or its
    ``parent_run_id`` is a run already known to be in the tree: one pass finds every descendant
    whose lines carry the root, and those whose parent logged before them.
    """

    def __init__(self, key: str, *, tree: bool) -> None:
        self.key = key
        self.tree = tree
        self.members: set[str] = {key}
        self._needle = key.encode("ascii")

    def candidate(self, raw: bytes) -> bool:
        """Return whether ``raw`` may be the run's: a fast test before any parsing."""
        if self._needle in raw:
            return True
        if not self.tree or len(self.members) < 2:
            return False
        return any(found.decode("ascii") in self.members for found in UUID.findall(raw))

    def match(self, line: Line, raw: bytes) -> str | None:
        """Return the id of the run (of the tree) that ``line`` belongs to, or None."""
        if line.run_id is not None:
            run = line.run_id
            if run == self.key:
                return run
            if self.tree and (line.root_run_id == self.key or line.parent_run_id in self.members):
                self.members.add(run)
                return run
            return None
        for found in UUID.findall(raw):
            text: str = found.decode("ascii")
            if text == self.key or (self.tree and text in self.members):
                return text
        return None
