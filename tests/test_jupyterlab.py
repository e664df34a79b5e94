"""Opening a committed notebook in JupyterLab and saving it changes nothing (git shows no modified lesson).

Before issue 26 every notebook stored `language_info: {"name": "python"}`; JupyterLab fills in what the
kernel reports as soon as it connects, so each lesson was marked unsaved on opening and modified on saving.

The round trip is JupyterLab's: a real Jupyter server (`jupyter server`, the one `make lab` runs) reads each
notebook through its contents API and writes it back with a PUT, as the browser's Save does; in between,
the two fields the browser's notebook model sets on connecting to a kernel — `metadata.language_info`,
from a real kernel's kernel_info reply, and `metadata.kernelspec`, from the server's kernelspec — are set
as JupyterLab sets them. (Everything else the browser does to a notebook on save is serialization, which
the server does here with the same nbformat.)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(REPO) for d in ("lessons", "exercises", "solutions") for p in (REPO / d).glob("*.ipynb"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    for rel in NOTEBOOKS:
        (root / rel).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jupyter-server"), f"--ServerApp.root_dir={root}",
                             f"--ServerApp.port={port}", "--IdentityProvider.token=t", "--no-browser", "--allow-root",
                             f"--ServerApp.runtime_dir={root / '.runtime'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def call(path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}?token=t", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    deadline = time.monotonic() + 120
    while True:
        try:
            call("/api/status")
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "jupyter server did not start"
            time.sleep(1)
    yield root, call
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def kernel_language_info():
    """What a kernel of this environment answers to kernel_info: what JupyterLab copies into the notebook."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        return kc.kernel_info(reply=True)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_open_and_save_in_jupyterlab_changes_nothing(server, kernel_language_info):
    root, call = server
    specs = call("/api/kernelspecs")["kernelspecs"]
    changed = []
    for rel in NOTEBOOKS:
        model = call(f"/api/contents/{rel.as_posix()}")
        meta = model["content"]["metadata"]
        spec = specs[meta["kernelspec"]["name"]]["spec"]  # the course's kernel, registered by `make install`
        meta["kernelspec"] = {"display_name": spec["display_name"], "language": spec["language"],
                              "name": meta["kernelspec"]["name"]}
        meta["language_info"] = kernel_language_info
        call(f"/api/contents/{rel.as_posix()}", "PUT", {"type": "notebook", "format": "json",
                                                        "content": model["content"]})
        if (root / rel).read_bytes() != (REPO / rel).read_bytes():
            changed.append(str(rel))
    assert not changed, f"saved by JupyterLab, these differ from the committed file: {changed}"
