"""One id per agent run, threaded through every log line, tool call, LLM request and error report.

Start a run with ``RunContext``; read it anywhere below with ``current_run_id()``; send it on
with ``headers()`` or ``environ()``. Integrations live in their own modules
(``agent_run_id.logging``, ``agent_run_id.asgi``, ``agent_run_id.httpx``, ...), each behind its
own extra, and are never imported from here.
"""

from ._context import RunContext, annotate, current_run, current_run_id
from ._facts import RunView
from ._hooks import RunFinisher, RunObserver, add_run_observer, remove_run_observer
from ._propagation import (
    HEADER,
    PARENT_HEADER,
    ROOT_HEADER,
    SESSION_HEADER,
    environ,
    headers,
    session_from_env,
)
from ._run_id import RunId
from ._wrap import in_current_run, new_run

__all__ = [
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
]

__version__ = "0.1.0"
