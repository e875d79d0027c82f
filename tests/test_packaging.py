"""The sdist a user or a packager downloads carries the license and the guides the README links."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build(kind: str, out: Path) -> Path:
    # --no-isolation: use the hatchling of the dev extra, so the test needs no network.
    subprocess.run(
        [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.iterdir()
    return built


@pytest.fixture(scope="module")
def sdist_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    sdist = _build("sdist", tmp_path_factory.mktemp("sdist"))
    with tarfile.open(sdist) as archive:
        # Names inside are "agent_run_id-<version>/<path>".
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def test_the_sdist_carries_the_mit_license(sdist_names: set[str]) -> None:
    assert "LICENSE" in sdist_names
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "agent-run-id contributors" in text


def test_the_sdist_carries_every_guide_the_readme_links(sdist_names: set[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))  # relative on GitHub
    assert linked  # the README does link guides
    guides = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert {path for path in linked if path.endswith(".md")} <= guides
    assert guides | linked <= sdist_names  # the screenshots the README shows too


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """Return the names in the wheel and its METADATA."""
    built = _build("wheel", tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(built) as archive:
        names = archive.namelist()
        (metadata,) = (name for name in names if name.endswith(".dist-info/METADATA"))
        return names, archive.read(metadata).decode()


def test_the_wheel_names_the_license_in_its_metadata(wheel: tuple[list[str], str]) -> None:
    names, metadata = wheel
    assert "License-Expression: MIT" in metadata
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_long_description_links_the_repository_files_absolutely(
    wheel: tuple[list[str], str],
) -> None:
    _, metadata = wheel
    description = metadata.split("\n\n", 1)[1]  # the README, after the headers
    assert description.startswith("# agent-run-id\n")
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links
    relative = [link for link in links if not link.startswith(("https://", "http://", "#"))]
    assert relative == []
    base = "https://github.com/MukundaKatta/agent-run-id/blob/main/"
    for guide in ("docs/inbound.md", "docs/outbound.md", "docs/registry.md", "docs/beyond.md"):
        assert f"]({base}{guide})" in description
        assert (ROOT / guide).is_file()
