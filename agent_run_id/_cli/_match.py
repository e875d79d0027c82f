"""Which log lines belong to the run asked for: by id, by prefix, or with its whole tree."""

from __future__ import annotations

from ._lines import UUID, Line

__all__ = ["Matcher"]


class Matcher:
    """Decide line by line whether a line is the run's (or, with ``tree``, a descendant's).

    JSON lines match by their ``run_id`` field; text lines (and JSON lines without one) by a run
    id anywhere in the line. With a prefix not resolved beforehand (standard input), the first
    run id that starts with it is the run; other ids starting with it are kept in ``others``,
    their lines left out, and the prefix is then reported ambiguous.

    In a tree, a JSON line is a descendant's when its ``root_run_id`` is the run, or its
    ``parent_run_id`` is a run already known to be in the tree: one pass finds every descendant
    whose lines carry the root, and those whose parent logged before them.
    """

    def __init__(self, key: str, *, prefix: bool, tree: bool) -> None:
        self.key: str | None = None if prefix else key
        self.prefix = key
        self.tree = tree
        self.members: set[str] = set() if prefix else {key}
        self.others: set[str] = set()
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
            if self._is_run(run):
                return run
            if (
                self.tree
                and self.key is not None
                and (line.root_run_id == self.key or line.parent_run_id in self.members)
            ):
                self.members.add(run)
                return run
            return None
        for found in UUID.findall(raw):
            text: str = found.decode("ascii")
            if self._is_run(text) or (self.tree and text in self.members):
                return text
        return None

    def _is_run(self, run: str) -> bool:
        if run == self.key:
            return True
        if not run.startswith(self.prefix):
            return False
        if self.key is None:
            self.key = run
            self.members.add(run)
            return True
        self.others.add(run)
        return False
