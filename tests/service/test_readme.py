"""The README and docs as a newcomer meets them: tables that render, links that resolve, and the curl,
grpcurl and detect examples of the README and docs/api.md run against the real service."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
# Where the runnable examples are: the README's first of each transport, docs/api.md's every route.
WITH_EXAMPLES = (README, REPO_ROOT / "docs" / "api.md")
DOCUMENTS = (README, *sorted((REPO_ROOT / "docs").glob("*.md")))


def _blocks(language: str) -> list[list[str]]:
    blocks, current = [], None
    for line in (line for document in WITH_EXAMPLES for line in document.read_text().splitlines()):
        if current is None and line.strip() == f"```{language}":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_table_row_has_its_headers_cell_count(document: Path):
    """A row with another count, or a paragraph inside a table, breaks the rendered table."""
    in_fence = False
    header = None
    for number, line in enumerate(document.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        cells = len(re.split(r"(?<!\\)\|", line.strip().strip("|"))) if line.startswith("|") else None
        if cells is None:
            header = None
        elif header is None:
            header = cells
        else:
            assert cells == header, f"{document.name}:{number}: {cells} cells under a {header}-column header"
    assert not in_fence, "an unclosed code fence"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(document: Path):
    """A moved section leaves no dangling link: each relative link names a file, and its #anchor a heading."""
    for target in re.findall(r"\]\(([^)#:]*)(#[^)]*)?\)", document.read_text()):
        path, anchor = target
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{document.name} links to {path}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor[1:] in _anchors(linked), f"{document.name} links to {path}{anchor}: no such heading"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    """The anchors of a document's headings (outside code blocks, where "#" starts a comment)."""
    anchors, in_fence = set(), False
    for line in document.read_text().splitlines():
        in_fence = not in_fence if line.startswith("```") else in_fence
        if not in_fence and line.startswith("#"):
            anchors.add(_anchor(line.lstrip("#")))
    return anchors


def test_the_readme_stays_short_with_a_table_of_contents():
    text = README.read_text()
    assert len(text.encode()) <= 12 * 1024
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings and all(f"](#{_anchor(heading)})" in text for heading in headings)


def _shell_examples() -> list[tuple[str, str | None]]:
    """(command, the comment line after it) for each curl, grpcurl and detect example against the
    service: continuation lines joined."""
    examples = []
    for block in _blocks("sh"):
        joined: list[str] = []
        for line in block:
            if joined and joined[-1].endswith("\\"):
                joined[-1] = joined[-1][:-1] + " " + line.strip()
            else:
                joined.append(line)
        for index, line in enumerate(joined):
            against_service = "localhost:8080" in line or "127.0.0.1:8080" in line or "127.0.0.1:9090" in line
            if (line.startswith(("curl ", "grpcurl ")) and against_service) or line.startswith("detect "):
                command = line.split("  #")[0].strip()
                after = joined[index + 1] if index + 1 < len(joined) else None
                examples.append((command, after if after and after.startswith("# ") else None))
    return examples


EXAMPLES = _shell_examples()


def test_the_readme_has_examples_to_check():
    commands = [command.split()[0] for command, _ in EXAMPLES]
    assert commands.count("curl") >= 10 and commands.count("grpcurl") >= 3 and commands.count("detect") >= 3


@pytest.mark.parametrize(("command", "comment"), EXAMPLES, ids=[c[:70] for c, _ in EXAMPLES])
def test_readme_example_runs_as_shown(service, image_server, shared_dir, tmp_path, command, comment):
    """Each example, with the test service's ports and photo server put in: the venv's bin first on PATH."""
    local = (command.replace("localhost:8080", f"127.0.0.1:{service.http_port}")
             .replace("127.0.0.1:8080", f"127.0.0.1:{service.http_port}")
             .replace("127.0.0.1:9090", service.grpc_target)
             .replace("http://127.0.0.1:8000/", image_server.url("/images/"))
             .replace("../shared/", f"{shared_dir}/"))
    if "169.254.169.254" in command:
        pytest.skip("shows an address the service refuses; the error contract tests cover it")
    if local.startswith("detect "):
        local = local.split("  #")[0] + f" --server {service.http_url} --grpc-server {service.grpc_target}"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", local.replace("curl -s", "curl -s --max-time 60", 1)], cwd=tmp_path,
                            capture_output=True, timeout=90, env=environment)
    assert result.returncode == 0, result.stderr
    written = [path for path in tmp_path.iterdir()]
    if written:
        assert written[0].read_bytes().startswith(b"\x89PNG")
        return
    output = result.stdout.decode()
    assert output, shlex.quote(local)
    if local.startswith(("grpcurl", "detect")) and "list" not in local.split():
        if "Predict" in local or (local.startswith("detect") and "--boxes" not in local):
            status, body = service.predict_http(image_server.url("/images/darknet_dog.jpg"))
            shown = json.loads(output)["objects"] if local.startswith("grpcurl") else output.split()
            assert shown == body["objects"]
        return
    if comment and comment.startswith("# {"):
        shown = comment[2:]
        if shown.startswith('{"objects"'):
            assert json.loads(output) == json.loads(shown)
        elif shown.startswith('{"success":true'):
            assert json.loads(output)["success"] is True
        elif shown.startswith('{"error"'):
            assert json.loads(output)["error"]["code"] in shown
    elif comment and comment.startswith("# app_"):
        assert output.split()[0] == comment.split()[1]
    if "masks=true" in command:
        assert "Mask R-CNN" in json.loads(output)["error"]["message"]
