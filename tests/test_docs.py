"""Every Python block of README.md and docs/*.md runs as shown, each on its own.

Sybil (a documentation-testing tool in use since 2017) finds the fenced blocks; each block runs
in a fresh interpreter, in an empty folder, as a user who pastes it into a file would run it.
A block that raises, or prints a traceback and exits non-zero, fails its test.

The ``agent-run-id`` commands of the bash blocks run too, in bash, in a folder that has the
registry and the log files they name, with the ``export`` lines among them; the other lines are
the user's own (make, pip, their agent, kubectl), and the examples they start have tests of
their own. The shell transcripts (console blocks) are checked in test_transcripts.py and
test_demo.py.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

from agent_run_id import RunContext, RunId, annotate
from agent_run_id.registry import SQLiteRunRegistry

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def run_as_a_script(example: Example) -> str | None:
    """Run the block in a new interpreter; return what went wrong (Sybil's failure), or None."""
    folder = Path(example.namespace["folder"])
    script = folder / "block.py"
    script.write_text(str(example.parsed))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OTEL_", "SENTRY_"))}
    # As a user who has their keys set: the SDK clients read them when they are built (and the
    # blocks send nothing: no request leaves the machine).
    env.update(OPENAI_API_KEY="sk-docs-test", ANTHROPIC_API_KEY="sk-ant-docs-test")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return f"exit status {done.returncode}\n{done.stdout}{done.stderr}"
    return None


# The run the command examples name, as 3947e5c4, and a child of it, in session chat-7.
RUN = RunId("3947e5c4-1d2b-4c6e-9a8f-0b1c2d3e4f50")
SESSION = "chat-7"


def a_folder_the_commands_name(folder: Path) -> None:
    """Give ``folder`` the registry and the logs the docs' commands read, with RUN's lines."""
    registry = SQLiteRunRegistry(folder / "runs.db")
    try:
        with RunContext(
            run_id=RUN, registry=registry, user_id="u-42", session_id=SESSION, task="plan a trip"
        ):
            # the OpenAI Agents SDK's trace id of this run, as its integration records it
            annotate(external_ids={"openai_trace": f"trace_{RUN.hex}"})
            with RunContext(task="search") as child:
                pass
            raise TimeoutError("search backend did not answer")
    except TimeoutError:
        pass
    registry.close()
    lineage = {
        "run_id": str(child.run_id),
        "parent_run_id": str(RUN),
        "root_run_id": str(RUN),
        "session_id": SESSION,
    }
    api = {"timestamp": "2026-12-01T19:39:39.025Z", "message": "agent started", **lineage}
    (folder / "api.jsonl").write_text(json.dumps(api) + "\n")
    with gzip.open(folder / "tool.log.gz", "wt") as tool:
        tool.write(f"2026-12-01T19:39:39.221Z ERROR search failed run={RUN}\n")


def commands_of(block: str) -> list[str]:
    """Return the lines of a bash block that the tests run: agent-run-id's, and exports."""
    return [line for line in block.splitlines() if line.startswith(("agent-run-id ", "export "))]


def run_the_commands(example: Example) -> str | None:
    """Run the block's agent-run-id and export lines in bash; return what failed, or None."""
    commands = commands_of(str(example.parsed))
    folder = Path(example.namespace["folder"])
    a_folder_the_commands_name(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # One shell, so that an export holds for the lines after it; -e stops at the first failure,
    # -x shows which command it was.
    done = subprocess.run(
        ["bash", "-exc", "\n".join(commands)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return f"exit status {done.returncode}\n{done.stdout}{done.stderr}"
    return None


SYBIL = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=run_as_a_script),
        CodeBlockParser(language="bash", evaluator=run_the_commands),
    ]
)
EXAMPLES = [
    example
    for document in (SYBIL.parse(path) for path in DOCUMENTS)
    for example in document.examples()
    # A bash block with no agent-run-id command has nothing to run here.
    if example.region.evaluator is run_as_a_script or commands_of(str(example.parsed))
]


def test_the_documents_have_blocks_to_run() -> None:
    evaluators = [example.region.evaluator for example in EXAMPLES]
    assert evaluators.count(run_as_a_script) >= 25
    assert evaluators.count(run_the_commands) >= 2  # README.md's and docs/registry.md's


@pytest.mark.parametrize(
    "example",
    [
        pytest.param(example, id=f"{Path(example.path).relative_to(ROOT)}:{example.line}")
        for example in EXAMPLES
    ],
)
def test_the_block_runs_as_shown(example: Example, tmp_path: Path) -> None:
    example.namespace["folder"] = tmp_path
    example.evaluate()
