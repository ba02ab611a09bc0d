"""Every shell command and code sample of README.md and of the documentation site's pages
(``docs/``, in the order of ``mkdocs.yml``'s nav), run as a reader would: commands through the
installed ``flowrt`` in a copy of ``examples/``, Python samples (top-level ``await`` allowed) in
a fresh folder, YAML samples loaded as workflows. A sample that stops working fails here; a
sample that cannot run here is a ``text`` block, and its page says why."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def pages() -> list[Path]:
    """README.md, then every page of the site in the order of its nav."""
    nav = re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    return [ROOT / "README.md", *(ROOT / "docs" / page for page in nav)]


BLOCKS = [
    block
    for page in pages()
    for block in re.findall(r"```(\w+)\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
]
FLOWRT = str(Path(sys.executable).parent / "flowrt")


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCKS if lang == language]


def commands() -> list[str]:
    """Each command line of the shell samples, without its comment (once: the README and a
    page may show the same one)."""
    lines = [line.split("  #")[0].strip() for code in blocks("sh") for line in code.splitlines()]
    return list(dict.fromkeys(line for line in lines if line))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a copy of examples/ (commands write their stores there)."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", folder / "examples")
    return folder


def argv(line: str, run_id: str) -> list[str]:
    line = line.replace("RUN_ID", run_id).replace(" [FILE]", "")
    line = re.sub(r"\[(--[^\]]+)\]", r"\1", line)  # an optional flag, shown in brackets: use it
    words = shlex.split(line)
    if words[0] == "flowrt":
        return [FLOWRT, *words[1:]]
    if words[:3] == ["python", "-m", "flowrt"]:
        return [sys.executable, *words[1:]]
    return words


def test_the_pages_are_in_the_nav_and_have_samples_of_every_kind() -> None:
    on_disk = {p.relative_to(ROOT / "docs") for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == {p.relative_to(ROOT / "docs") for p in pages()[1:]}  # none left out
    assert len(commands()) >= 14
    assert len(blocks("python")) >= 8
    assert len(blocks("yaml")) >= 1
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


SAMPLE_URL = "postgresql://app@db.internal/app"  # the README's; the tests' own server here


def run_command(
    command: list[str], cwd: Path, run_id: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a README command. ``flowrt worker`` serves until SIGTERM: it gets one after 3 s;
    ``flowrt ui`` gets one once its runs page (which lists ``run_id``) has been read."""
    if command[1:2] not in (["worker"], ["ui"]):
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
        )
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if command[1] == "ui":
        port = command[command.index("--port") + 1]
        assert run_id in served(f"http://127.0.0.1:{port}/ui", process)
    else:
        time.sleep(3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())


def served(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> str:
    """The page at ``url`` once the server ``process`` answers (within ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, "the server exited"
        try:
            return httpx.get(url).raise_for_status().text
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing served at {url}"
            time.sleep(0.1)


@pytest.mark.timeout(600)  # some 30 commands, each a fresh process
def test_every_shell_command_runs(workdir: Path, postgres_url: str) -> None:
    run_id = ""
    for line in commands():
        if line.startswith("make test"):
            continue  # it is the command running this suite
        command = [word.replace(SAMPLE_URL, postgres_url) for word in argv(line, run_id)]
        cwd = ROOT if command[0] == "make" else workdir
        done = run_command(command, cwd, run_id)
        if command[1:3] == ["runs", "cancel"]:  # the stored run has ended: exit 2, one line
            assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
            assert "has ended" in done.stderr
            continue
        # 0, or 1 when the example run fails by design (demo.yaml declines the card)
        assert done.returncode in (0, 1), (line, done.stderr[-2000:])
        # no crash: a traceback in JSON logs (a node's failure) is inside a string, not a line
        assert not any(out.startswith("Traceback") for out in done.stderr.splitlines()), line
        if "--store" in command and not run_id:  # the stored run the next commands name
            run_id = done.stderr.splitlines()[0].split()[1]
    assert run_id


def run_sample(code: str, cwd: Path, names: dict[str, Any]) -> dict[str, Any]:
    """Run a Python sample (top-level await allowed) in ``cwd``; return its namespace."""
    namespace: dict[str, Any] = {"__name__": "readme", **names}
    compiled = compile(code, "sample.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)

    async def main() -> None:
        result = eval(compiled, namespace)
        if result is not None:
            await result

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        anyio.run(main)
    return namespace


class Payments:
    """The payment client the durable-runs sample calls."""

    def __init__(self) -> None:
        self.charged: dict[str, int] = {}

    async def charge(self, order_id: int, idempotency_key: str) -> str:
        self.charged[idempotency_key] = order_id
        return f"charged {order_id}"


@pytest.mark.timeout(180)
def test_every_python_sample_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    from flowrt import Workflow

    payments = Payments()
    webhook = Workflow("webhook")
    webhook.node(lambda order_id=0: order_id, name="receive")
    names = {"payments": payments, "wf": webhook}
    namespaces = []
    for i, code in enumerate(blocks("python")):
        folder = tmp_path / f"sample{i}"
        folder.mkdir()
        code = code.replace(SAMPLE_URL, postgres_url)
        namespaces.append(run_sample(code, folder, dict(names)))
    printed = capsys.readouterr().out
    assert printed.startswith("success")  # the 20-line example ran and printed its result
    assert payments.charged == {"order-7:charge": 7}  # once, though the run id was used twice
    (app,) = [ns["app"] for ns in namespaces if "app" in ns]
    assert "/webhooks/order/run" in app.openapi()["paths"]
    (worked,) = [ns["result"] for ns in namespaces if "worker" in ns]
    assert (worked.status, worked.output) == ("success", {"receive": 7})
    for ns in namespaces:
        if "store" in ns:
            ns["store"].close()


def test_the_yaml_samples_are_example_files() -> None:
    for sample in blocks("yaml"):
        name = sample.splitlines()[0].removeprefix("# ").split(":")[0]
        assert name.startswith("examples/"), sample[:80]  # each is a file the examples test
        on_disk = yaml.safe_load((ROOT / name).read_text())
        assert yaml.safe_load(sample) == on_disk
