"""Every Python block of README.md and docs/*.md runs as shown, each on its own.

Sybil (a documentation-testing tool in use since 2017) finds the fenced blocks; each block runs
in a fresh interpreter, in an empty folder, as a user who pastes it into a file would run it.
A block that raises, or prints a traceback and exits non-zero, fails its test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

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


SYBIL = Sybil(parsers=[CodeBlockParser(language="python", evaluator=run_as_a_script)])
EXAMPLES = [
    pytest.param(example, id=f"{Path(document.path).relative_to(ROOT)}:{example.line}")
    for document in (SYBIL.parse(path) for path in DOCUMENTS)
    for example in document.examples()
]


def test_the_documents_have_python_blocks() -> None:
    assert len(EXAMPLES) >= 25


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_block_runs_as_shown(example: Example, tmp_path: Path) -> None:
    example.namespace["folder"] = tmp_path
    example.evaluate()
