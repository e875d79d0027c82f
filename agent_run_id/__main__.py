"""``python -m agent_run_id``: the ``agent-run-id`` command."""

from __future__ import annotations

import sys

from agent_run_id._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
