"""Links to other systems' pages for a run's external ids, from ``$AGENT_RUN_ID_LINKS``.

The variable holds a JSON object that maps a system's name to a URL template with ``{id}``
where the external id goes (quoted for a URL), for example::

    AGENT_RUN_ID_LINKS='{"openai_trace": "https://platform.openai.com/traces/trace?trace_id={id}"}'

A value that is not such an object is reported once and ignored: the command still shows the ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import IO
from urllib.parse import quote

__all__ = ["ENV_LINKS", "link_templates", "linked"]

#: The environment variable that holds the URL templates.
ENV_LINKS = "AGENT_RUN_ID_LINKS"
_EXAMPLE = '{"openai_trace": "https://platform.openai.com/traces/trace?trace_id={id}"}'


def link_templates(err: IO[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the URL template of each system in ``$AGENT_RUN_ID_LINKS``; none when it is unset.

    A value that is not a JSON object of ``http(s)`` templates with ``{id}`` is reported on
    ``err``, naming the variable and the fix, and gives no links.
    """
    text = (os.environ if env is None else env).get(ENV_LINKS, "").strip()
    if not text:
        return {}
    try:
        templates = json.loads(text)
    except ValueError:
        templates = None
    problem = _problem(templates)
    if problem is not None:
        err.write(
            f"agent-run-id: ${ENV_LINKS} is ignored: {problem}; set it to a JSON object of URL "
            f"templates with {{id}}, such as '{_EXAMPLE}'\n"
        )
        return {}
    return dict(templates)


def linked(system: str, external_id: str, templates: Mapping[str, str]) -> str | None:
    """Return the link to ``external_id`` in ``system``'s pages, or None without a template."""
    template = templates.get(system)
    if template is None:
        return None
    return template.replace("{id}", quote(external_id, safe=""))


def _problem(templates: object) -> str | None:
    if not isinstance(templates, dict):
        return "it is not a JSON object"
    for system, template in templates.items():
        if not isinstance(template, str) or "{id}" not in template:
            return f"the template of {system!r} is not a string with {{id}} in it"
        if not template.startswith(("https://", "http://")):
            return f"the template of {system!r} is not an http(s) URL"
    return None
