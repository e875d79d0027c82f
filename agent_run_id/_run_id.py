"""The RunId value: one UUID per agent run, with its lineage."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ._show import show_value
from ._uuid import EXAMPLE, new_v4, new_v7, parse, parse_wire_id

__all__ = [
    "ENV_PARENT_RUN_ID",
    "ENV_ROOT_RUN_ID",
    "ENV_RUN_ID",
    "ENV_SESSION_ID",
    "ENV_VERSION",
    "RunId",
    "lineage_fields",
    "make_run_id",
    "new_default_id",
]

#: The environment variables that carry a run to a subprocess (see ``agent_run_id.environ``).
ENV_RUN_ID = "AGENT_RUN_ID"
ENV_PARENT_RUN_ID = "AGENT_PARENT_RUN_ID"
ENV_ROOT_RUN_ID = "AGENT_ROOT_RUN_ID"
#: The environment variable that carries the run's session to a subprocess.
ENV_SESSION_ID = "AGENT_RUN_SESSION_ID"
#: The environment variable that makes ``RunId.generate()`` mint version-7 ids process-wide.
ENV_VERSION = "AGENT_RUN_ID_VERSION"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_GENERATORS: dict[int, Callable[[], str]] = {4: new_v4, 7: new_v7}


def _default_generator(environ: Mapping[str, str]) -> Callable[[], str]:
    """Return the generator ``$AGENT_RUN_ID_VERSION`` asks for (version 4 when unset)."""
    text = environ.get(ENV_VERSION, "").strip()
    if text in ("", "4", "7"):
        return _GENERATORS[int(text or 4)]
    # Raising here would make importing the library fail over a setting: warn and go on.
    logging.getLogger("agent_run_id").warning(
        "$%s is %s; it must be 4 or 7: making version-4 ids", ENV_VERSION, show_value(text)
    )
    return new_v4


# Read once at import: generate() then costs nothing extra, and the version cannot change under
# a running process. Set the variable before the process starts.
new_default_id = _default_generator(os.environ)


class RunId:
    """The id of one agent run: a UUID in canonical form, with its parent and root run.

    Make one with ``RunId.generate()`` at the start of a run, or with ``RunId.from_string(text)``
    for an id that came from elsewhere. A RunId is immutable (its attributes are read-only) and
    hashable; equality and hash use the id alone, not the lineage.

    Args:
        value: a UUID as text, in any form ``RunId.from_string`` takes.
        parent: the run that started this one, if any (a RunId, or its id as text).
        root: the first run of the tree; defaults to the parent's root, or to this run when it has
            no parent. Give it alone when the parent is unknown but the root arrived from outside.

    Example::

        run_id = RunId.generate()
        step = run_id.child()  # step.parent == run_id, step.root == run_id
    """

    __slots__ = ("_parent", "_root", "_value")

    _value: str
    _parent: RunId | None
    _root: RunId | None

    def __new__(
        cls,
        value: str,
        *,
        parent: RunId | str | None = None,
        root: RunId | str | None = None,
    ) -> RunId:
        canonical = parse(value, "RunId value")
        parent_id = _coerce(parent, "parent")
        root_id = _coerce(root, "root")
        if parent_id is not None and parent_id._value == canonical:
            raise ValueError(f"a run cannot be its own parent: parent={canonical!r}")
        if root_id is not None and root_id._value == canonical:
            root_id = None  # the run is its own root: stored as None, like a root made here
        if root_id is None and parent_id is not None:
            root_id = parent_id.root
        return make_run_id(canonical, parent_id, root_id, cls)

    @classmethod
    def generate(cls, parent: RunId | None = None, *, version: int | None = None) -> RunId:
        """Return a new run id, a child of ``parent`` when given.

        The id is a random UUID version 4, or with ``version=7`` a time-ordered UUID version 7
        whose first 48 bits are the current time in milliseconds (so ids sort by start time).
        When ``version`` is omitted, ``$AGENT_RUN_ID_VERSION`` (``4`` or ``7``, read when the
        library is imported) decides; it defaults to 4.
        """
        if version is None:
            value = new_default_id()
        elif version == 4 or version == 7:
            value = _GENERATORS[version]()
        else:
            raise ValueError(f"version must be 4 or 7 (or None for the default), got {version!r}")
        if parent is None:
            return make_run_id(value, None, None, cls)
        if isinstance(parent, RunId):
            return make_run_id(value, parent, parent.root, cls)
        raise TypeError(
            f"parent must be a RunId or None, got {type(parent).__name__}: "
            "use RunId.from_string(text) for an id held as text"
        )

    @classmethod
    def from_string(cls, s: str) -> RunId:
        """Return the run id written in ``s``, in canonical form.

        Takes the forms ``uuid.UUID`` documents: ``8-4-4-4-12`` or 32 hex digits, in any case,
        optionally in braces or after ``urn:uuid:`` (lowercase, as ``uuid.UUID`` takes it), and
        in ASCII only. Anything else raises ValueError.
        """
        return make_run_id(parse(s, "run id"), None, None, cls)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunId | None:
        """Return the run passed in ``AGENT_RUN_ID`` (with its lineage), or None when unset.

        Reads ``os.environ`` unless ``env`` is given; see :func:`agent_run_id.environ`. The
        variables follow the rule of the run headers: a UUID as ``8-4-4-4-12`` or 32 hex digits,
        any case, spaces and tabs around it dropped, and not the nil or max UUID (a placeholder
        would merge unrelated runs); a blank variable counts as unset. Raises ValueError naming
        the variable when one holds anything else.
        """
        env = os.environ if env is None else env
        value = _wire_variable(env, ENV_RUN_ID)
        if value is None:
            return None
        root = _wire_variable(env, ENV_ROOT_RUN_ID)
        parent = _wire_variable(env, ENV_PARENT_RUN_ID)
        parent_id = None if parent is None else RunId(parent, root=root)
        return cls(value, parent=parent_id, root=root)

    @property
    def value(self) -> str:
        """The id in canonical form: lowercase ``8-4-4-4-12``."""
        return self._value

    @property
    def parent(self) -> RunId | None:
        """The run that started this one, or None for a root run or an unknown parent."""
        return self._parent

    @property
    def root(self) -> RunId:
        """The first run of this run's tree: the run itself when it has no known ancestor."""
        return self if self._root is None else self._root

    @property
    def created_at(self) -> datetime | None:
        """When a version-7 id was made (aware UTC, to the millisecond), else None.

        None for other versions, for an id without the RFC 9562 variant, and for a time past the
        year 9999 (an id that came from elsewhere may carry any 48 bits there).
        """
        value = self._value
        if value[14] != "7" or value[19] not in "89ab":
            return None
        try:
            return _EPOCH + timedelta(milliseconds=int(value[:8] + value[9:13], 16))
        except OverflowError:
            return None

    @property
    def uuid(self) -> uuid.UUID:
        """The id as a ``uuid.UUID``."""
        return uuid.UUID(self._value)

    @property
    def hex(self) -> str:
        """The id as 32 lowercase hex digits, without dashes (``uuid.UUID.hex``).

        What systems that take a UUID's hex want, such as the OpenAI Agents SDK's trace ids
        (``f"trace_{run_id.hex}"``).
        """
        value = self._value
        return value[:8] + value[9:13] + value[14:18] + value[19:23] + value[24:]

    def child(self) -> RunId:
        """Return a new run id whose parent is this run (``RunId.generate(parent=self)``)."""
        return RunId.generate(parent=self)

    def short(self) -> str:
        """Return the first 8 characters, for display where space is tight."""
        return self._value[:8]

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"RunId({self._value!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunId):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (make_run_id, (self._value, self._parent, self._root))


def make_run_id(
    value: str, parent: RunId | None, root: RunId | None, cls: type[RunId] = RunId
) -> RunId:
    """Return the RunId of a canonical ``value`` and its lineage, unchecked.

    The one place a RunId's fields are written, for values already checked: by ``RunId()`` and
    its other constructors, the wire rule, unpickling. ``root`` is None for a run that is its own
    root. (The ASGI middleware writes the same three stores inline on its hot path;
    tests/test_core_fast_paths.py holds that copy to this one.)
    """
    # Immutable by contract: the public attributes are read-only properties and __slots__ admits
    # no others. A __setattr__ that refuses every write would make each RunId three times as slow
    # to build (it then has to be filled through object.__setattr__), and ids are minted per call.
    run_id = object.__new__(cls)
    run_id._value = value
    run_id._parent = parent
    run_id._root = root
    return run_id


def lineage_fields(
    run_id: RunId, names: tuple[str, str, str], *, own_root: bool = False
) -> dict[str, str]:
    """Return the run's id and lineage under ``names`` (for the run, its parent, its root).

    The one source of a run's fields, whatever names and container each integration uses: the
    id always; the parent's when it has one; the root's when the run is not its own root, or
    always with ``own_root=True`` (logs and spans, where a query by root finds the root too).
    """
    run, parent, root = names
    fields = {run: run_id._value}
    if run_id._parent is not None:
        fields[parent] = run_id._parent._value
    if own_root or run_id._root is not None:
        fields[root] = run_id.root._value
    return fields


def _wire_variable(env: Mapping[str, str], name: str) -> str | None:
    """Return the canonical id in ``env[name]``, None when unset or blank; raise when not one."""
    text = env.get(name)
    if not text or not text.strip(" \t"):
        return None
    value = parse_wire_id(text)
    if value is None:
        raise ValueError(
            f"${name} {show_value(text)} is not a run id: it takes a UUID such as {EXAMPLE!r} "
            "(or its 32 hex digits), not the nil or max UUID; unset it to start a new root run"
        )
    return value


def _coerce(value: RunId | str | None, what: str) -> RunId | None:
    if value is None or isinstance(value, RunId):
        return value
    if isinstance(value, str):
        return RunId.from_string(value)
    raise TypeError(f"{what} must be a RunId, a str or None, got {type(value).__name__}")
