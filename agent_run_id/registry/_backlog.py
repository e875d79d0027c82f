"""The writes the registry's writer holds, and the budget that bounds them.

Memory stays bounded whatever happens to the database: the writes held (waiting, being written,
kept for a retry) are counted in bytes, and past ``max_pending_bytes`` the oldest are dropped
(counted, so that the writer logs once per episode of drops); while the database fails, no more
than ``max_pending`` writes are kept either. While failing, the writer takes one write at a time,
so the writes held outside the waiting line (where they could not be dropped) are at most one.
"""

from __future__ import annotations

from collections import deque
from sys import getsizeof
from typing import Any

__all__ = ["Backlog", "Held", "Op", "held_bytes"]

#: A write as the registry gives it: the statement and its parameters.
Op = tuple[str, tuple[Any, ...]]
#: A write as the writer holds it: the statement, its parameters, its size in bytes, its number.
Held = tuple[str, tuple[Any, ...], int, int]
_MAX_BATCH = 10_000
# What holding one write costs besides its parameters and their values: the held tuple, its size
# and number, and the deque's slot. Counted once, not measured per write.
_HELD_BYTES = getsizeof(("", (), 1 << 40, 1 << 40)) + 2 * getsizeof(1 << 40) + 8


def held_bytes(params: tuple[Any, ...]) -> int:
    """Return the bytes holding a write with these parameters costs (its strings counted whole).

    A value the write shares with others (the host name, the statement) is counted too: the
    count errs on the safe side.
    """
    return _HELD_BYTES + getsizeof(params) + sum(map(getsizeof, params))


class Backlog:
    """Hold the writer's writes, oldest first, within ``max_pending_bytes`` and ``max_pending``.

    Not locked itself: the writer calls every method with its lock held.
    """

    def __init__(self, max_pending: int, max_pending_bytes: int) -> None:
        self.max_pending = max_pending
        self.max_bytes = max_pending_bytes
        self.pending: deque[Held] = deque()  # oldest first; a failed batch goes back in front
        self.bytes = 0  # of the writes held: pending, and the batch being written
        self.writing = 0  # writes in the batch being written
        self.seq = 0  # the number the next write gets
        self.dropped = 0  # in this episode of drops
        self.failing = False
        self._dropped_before = 0  # the drops counted when the batch being written was taken
        self._drop_logged = False

    def add(self, kind: str, params: tuple[Any, ...], size: int) -> bool:
        """Hold one write of ``size`` bytes; return True when it begins an episode of drops."""
        self.pending.append((kind, params, size, self.seq))
        self.seq += 1
        self.bytes += size
        # over(), inlined: this is the agent's side, on every start and end of a run.
        return (
            self.bytes > self.max_bytes or (self.failing and len(self.pending) > self.max_pending)
        ) and self.shed()

    def take(self) -> list[Held]:
        """Take the next batch to write (empty when none is waiting); it counts as being written.

        The writes being written cannot be dropped, so a batch is kept small beside the budget:
        a quarter of it at most (always one write), and one write while the database fails.
        """
        batch = self._take()
        self.writing = len(batch)
        self._dropped_before = self.dropped
        return batch

    def recover(self) -> tuple[bool, int, int]:
        """Note that a batch was written: the database works.

        Return whether it was failing until now, how many writes are waiting, and how many
        were dropped in this episode.
        """
        recovered, self.failing = self.failing, False
        return recovered, len(self.pending), self.dropped

    def release(self, batch: list[Held]) -> None:
        """Forget a batch written (or lost); end an episode of drops once all is written."""
        self.bytes -= sum(held[2] for held in batch)
        self.writing = 0
        if not self.pending and not self.failing:
            self.dropped = 0
            self._drop_logged = False

    def give_back(self, batch: list[Held]) -> tuple[bool, bool]:
        """Put back a batch the database failed to write, in front, to be tried again.

        Return whether this is the first failure (of an episode of failures) and whether it
        begins an episode of drops.
        """
        self.writing = 0
        if self.dropped == self._dropped_before:
            self.pending.extendleft(reversed(batch))
        else:
            # Newer writes were dropped while these, the oldest, were being tried: they go
            # too, so that what is kept is always the newest.
            self.bytes -= sum(held[2] for held in batch)
            self.dropped += len(batch)
        first_failure = not self.failing
        self.failing = True
        return first_failure, self.over() and self.shed()

    def clear(self) -> None:
        """Forget every write waiting (a forked child's are its parent's)."""
        self.pending = deque()
        self.bytes = 0

    def next_unwritten(self) -> int:
        """Return the number of the oldest write not yet written (the next number if none)."""
        return self.pending[0][3] if self.pending else self.seq

    def over(self) -> bool:
        """Return whether the writes held exceed the budget."""
        return self.bytes > self.max_bytes or (
            self.failing and len(self.pending) > self.max_pending
        )

    def shed(self) -> bool:
        """Drop the oldest writes waiting until the budget holds; True for an episode's first.

        The batch being written is not in the waiting line: while failing it is one write.
        """
        pending = self.pending
        while pending and self.over():
            self.bytes -= pending.popleft()[2]
            self.dropped += 1
        if self._drop_logged:
            return False
        self._drop_logged = True
        return True

    def _take(self) -> list[Held]:
        pending = self.pending
        if not pending:
            return []
        batch = [pending.popleft()]
        if self.failing:
            return batch
        room = self.max_bytes // 4 - batch[0][2]
        while pending and len(batch) < _MAX_BATCH and pending[0][2] <= room:
            held = pending.popleft()
            room -= held[2]
            batch.append(held)
        return batch
