"""The outbound examples run end to end, with no outside service, and show what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_openai_client_sends_each_steps_run_to_the_llm_and_the_tool() -> None:
    out = run_example("openai_client.py")
    agents = re.findall(r"^agent run ([0-9a-f]{8}) asks", out, re.MULTILINE)
    got = re.findall(
        r"server got (POST|GET)\s+(\S+)\s+X-Run-Id=([0-9a-f]{8}) parent=([0-9a-f]{8})", out
    )
    steps = re.findall(r"^step ([0-9a-f]{8}) found 1 result", out, re.MULTILINE)
    assert len(set(agents)) == 3
    assert len(set(steps)) == 3
    assert len(got) == 6
    for step in steps:
        calls = [(method, path, parent) for method, path, run, parent in got if run == step]
        assert sorted(call[:2] for call in calls) == [
            ("GET", "/tools/search"),
            ("POST", "/v1/chat/completions"),
        ]
        assert calls[0][2] == calls[1][2]  # both calls of a step name the same agent run
        assert calls[0][2] in agents
    assert {parent for *_, parent in got} == set(agents)


def test_tools_requests_sends_each_threads_run_and_only_to_the_listed_host() -> None:
    out = run_example("tools_requests.py")
    threads, rest = out.split("\n\n", 1)
    asked = re.findall(r"^run ([0-9a-f-]{36}) searches", threads, re.MULTILINE)
    got = re.findall(r"127\.0\.0\.1 got /search  X-Run-Id=([0-9a-f-]{36})", threads)
    assert len(set(asked)) == 4
    assert sorted(got) == sorted(asked)
    assert re.findall(r"(\S+) got (\S+)\s+X-Run-Id=(\S+)", rest)[:3] == [
        ("localhost", "/search", "-"),
        ("127.0.0.1", "/go", re.findall(r"^run (\S+) searches", rest, re.MULTILINE)[0]),
        ("localhost", "/search", "-"),
    ]
    assert "127.0.0.1 got /search  X-Run-Id=set-by-caller" in rest
