"""External ids: the ids other systems give a run (a LangSmith run, an OpenAI trace); their rule.

A run can carry one id per system (``system -> id``), so that an id read in another system's
dashboard finds the run here, and the run's record links there. A system's name is short and
lowercase (``openai_trace``, ``langsmith_run``); an id is that system's own text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ._show import show_value

__all__ = ["MAX_EXTERNAL_ID", "NO_EXTERNAL_IDS", "check_external_ids"]

#: The longest external id taken, in characters.
MAX_EXTERNAL_ID = 256
#: The external ids of a run given none: one shared, read-only mapping.
NO_EXTERNAL_IDS: Mapping[str, str] = MappingProxyType({})

_SYSTEM = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# Printable ASCII and any character beyond it, but no control character and no space.
_ID = re.compile(rf"[^\x00-\x20\x7f]{{1,{MAX_EXTERNAL_ID}}}")


def check_external_ids(value: object, what: str = "external_ids") -> dict[str, str]:
    """Return ``value`` as a dict if it maps system names to ids, else raise naming ``what``.

    A system's name is 1 to 64 characters of lowercase ASCII letters, digits, ``_``, ``.`` and
    ``-``, starting with a letter; an id is 1 to 256 characters without spaces or control
    characters.
    """
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{what} must be a mapping of system names to ids, got {type(value).__name__}: "
            "pass e.g. {'langsmith_run': '1f0e...'}"
        )
    checked: dict[str, str] = {}
    for system, external_id in value.items():
        if not isinstance(system, str) or not _SYSTEM.fullmatch(system):
            raise ValueError(
                f"{what} has the system name {show_value(system)}: name a system with 1 to 64 "
                "lowercase letters, digits, '_', '.' or '-', starting with a letter, such as "
                "'langsmith_run'"
            )
        if not isinstance(external_id, str) or not _ID.fullmatch(external_id):
            raise ValueError(
                f"{what}[{system!r}] is {show_value(external_id)}, not an external id: give the "
                f"other system's id as text of 1 to {MAX_EXTERNAL_ID} characters without spaces "
                "or control characters"
            )
        checked[system] = external_id
    return checked
