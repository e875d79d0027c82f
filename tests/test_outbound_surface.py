"""Each outbound integration module's public surface is its __all__, every name documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

SURFACES = {
    "httpx": {"AsyncRunIdTransport", "RunIdTransport", "instrument"},
    "httpx2": {"AsyncRunIdTransport", "RunIdTransport", "instrument"},
    "requests": {"RunIdAdapter", "instrument"},
    "aiohttp": {"trace_config"},
}


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_all_is_the_public_surface_and_each_name_is_documented(name: str) -> None:
    module = importlib.import_module(f"agent_run_id.{name}")
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    assert set(module.__all__) == SURFACES[name] == defined_here
    assert inspect.getdoc(module)
    for attr in module.__all__:
        doc = inspect.getdoc(getattr(module, attr))
        assert doc, attr
        assert "Security" in doc, f"{name}.{attr} lacks its security note"
        assert "Example::" in doc, f"{name}.{attr} lacks its example"
