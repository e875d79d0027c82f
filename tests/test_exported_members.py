"""The package root's public surface is exactly its __all__, each name documented."""

from __future__ import annotations

import inspect

import agent_run_id

EXPECTED = {
    "HEADER",
    "PARENT_HEADER",
    "ROOT_HEADER",
    "SESSION_HEADER",
    "RunContext",
    "RunFinisher",
    "RunId",
    "RunObserver",
    "RunView",
    "add_run_observer",
    "annotate",
    "current_run",
    "current_run_id",
    "environ",
    "headers",
    "in_current_run",
    "new_run",
    "remove_run_observer",
    "session_from_env",
}


def test_all_is_the_public_surface() -> None:
    public = {
        name
        for name, value in vars(agent_run_id).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(agent_run_id.__all__) == EXPECTED
    assert public == EXPECTED


def test_every_exported_callable_has_a_docstring() -> None:
    for name in agent_run_id.__all__:
        value = getattr(agent_run_id, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
