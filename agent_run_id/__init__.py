"""One id per agent run, threaded through every log line, tool call, LLM request and error report.

Start a run with ``RunContext``; read it anywhere below with ``current_run_id()``; send it on
with ``headers()`` or ``environ()``. Integrations live in their own modules
(``agent_run_id.logging``, ``agent_run_id.asgi``, ``agent_run_id.httpx``, ...), each behind its
own extra, and are never imported from here.
"""

from ._context import RunContext, current_run_id
from ._hooks import RunFinisher, RunObserver, add_run_observer, remove_run_observer
from ._propagation import (
    HEADER,
    PARENT_HEADER,
    ROOT_HEADER,
    environ,
    headers,
)
from ._run_id import RunId
from ._wrap import in_current_run, new_run

__all__ = [
    "HEADER",
    "PARENT_HEADER",
    "ROOT_HEADER",
    "RunContext",
    "RunFinisher",
    "RunId",
    "RunObserver",
    "add_run_observer",
    "current_run_id",
    "environ",
    "headers",
    "in_current_run",
    "new_run",
    "remove_run_observer",
]

__version__ = "0.1.0"
