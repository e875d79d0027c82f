"""Which log lines belong to the run asked for (by id, or with its tree), or to the session."""

from __future__ import annotations

from collections.abc import Iterable

from ._lines import UUID, Line

__all__ = ["Matcher", "SessionMatcher"]


class Matcher:
    """Decide line by line whether a line is the run's (or, with ``tree``, a descendant's).

    JSON lines match by their ``run_id`` field; text lines (and JSON lines without one) by the
    run id anywhere in the line. A prefix is resolved to the full id before the scan.

    In a tree, a JSON line is a descendant's when its ``root_run_id`` is the run, or its
    ``parent_run_id`` is a run already known to be in the tree: one pass finds every descendant
    whose lines carry the root, and those whose parent logged before them. ``members`` are runs
    known to be in the tree beforehand (the registry's), ``root`` the id of the tree's root.

    For the scan's bytes-level search (``needles``): a line of the run holds its id; in a
    JSON-lines log, a line of a descendant holds the id of the root of the whole tree (as
    ``root_run_id``, which every log integration of the package writes), learned from the
    run's first line that carries it when not given. So in a JSON-lines log, a text line (a
    traceback) is found when it names the run or that root, not when it names a descendant
    alone; in a text log, each line is tested (``candidate``). A descendant's JSON line that
    carries no ``root_run_id`` (a service that forwards only ``X-Run-Id``) holds neither needle:
    ``every_line`` tests each line instead, finding it by its ``parent_run_id`` as before.
    """

    def __init__(
        self,
        key: str,
        *,
        tree: bool,
        members: Iterable[str] = (),
        root: str | None = None,
        every_line: bool = False,
    ) -> None:
        self.key = key
        self.tree = tree
        self.every_line = every_line
        self.members: set[str] = {key, *members}
        self._needles: tuple[bytes, ...] = (key.encode("ascii"),)
        self._needle = self._needles[0]
        if tree and root is not None and root != key:
            self._needles += (root.encode("ascii"),)

    def needles(self, json_lines: bool) -> tuple[bytes, ...] | None:
        """Return the bytes one of which each line sought contains, or None: test each line.

        In a JSON-lines log, the run's id and the root's: a text line among JSON lines is
        sought by them too. A whole tree in a text log has none: a descendant's text line names
        its own id only, so each line is tested; so is each with ``every_line``.
        """
        if self.every_line:
            return None
        if not self.tree or json_lines:
            return self._needles
        return None

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
            if run in self.members:
                if self.tree:
                    self._learn_root(line.root_run_id)
                return run
            if self.tree and (line.root_run_id == self.key or line.parent_run_id in self.members):
                self.members.add(run)
                self._learn_root(line.root_run_id)
                return run
            return None
        for found in UUID.findall(raw):
            text: str = found.decode("ascii")
            if text == self.key or (self.tree and text in self.members):
                return text
        return None

    def _learn_root(self, root: str | None) -> None:
        if root is not None and len(self._needles) == 1 and root != self.key:
            self._needles += (root.encode("ascii"),)


class SessionMatcher:
    """Decide line by line whether a line is of a session: of one of its runs, or says so.

    A JSON line is the session's when its ``session_id`` field is the session, or its run, its
    ``parent_run_id`` or its ``root_run_id`` is a run known to be the session's: the runs given
    (the registry's runs of the session and their descendants) and those of the lines found so
    far. A text line (or a JSON line without a run id) is the session's when it names such a
    run anywhere. The session's own string is not looked for in text lines: ``chat-7`` is in
    ``chat-70``.
    """

    def __init__(self, session: str, runs: Iterable[str] = ()) -> None:
        self.session = session
        self.members: set[str] = set(runs)
        self._needle = session.encode("ascii")

    def needles(self, json_lines: bool) -> tuple[bytes, ...] | None:
        """Return None: a session's runs grow as its lines are found, so each line is tested."""
        return None

    def candidate(self, raw: bytes) -> bool:
        """Return whether ``raw`` may be the session's: a fast test before any parsing."""
        if self._needle in raw:
            return True
        if not self.members:
            return False
        return any(found.decode("ascii") in self.members for found in UUID.findall(raw))

    def match(self, line: Line, raw: bytes) -> str | None:
        """Return the run that makes ``line`` the session's (``""`` for none named), or None."""
        run = line.run_id
        if line.session_id == self.session:
            if run is None:
                return ""
            self.members.add(run)
            return run
        if run is not None:
            members = self.members
            if run in members or line.parent_run_id in members or line.root_run_id in members:
                members.add(run)
                return run
            return None
        for found in UUID.findall(raw):
            text: str = found.decode("ascii")
            if text in self.members:
                return text
        return None
