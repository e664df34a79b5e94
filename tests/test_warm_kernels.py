"""A kernel forked from the warm server (tests/warm_kernels.py) behaves as a fresh one where a notebook can tell.

The same cells run in a fresh kernel and in a forked one; their outputs must be equal: progress bars
(tqdm.auto decides at import whether it is in a notebook), a library's logging warning (its handler was
made at import, in the server), the folder and import path, matplotlib's backend, threads. Then the
forked kernel's lifetime: an interrupt reaches the running cell, and a kill of the launcher (what a
timed-out notebook gets) ends the kernel.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import ipykernel.kernelspec
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbval.kernel import CURRENT_ENV_KERNEL_NAME

sys.path.insert(0, str(Path(__file__).parent))
import warm_kernels  # noqa: E402

CELLS = [
    "import os, sys\nprint(os.getcwd(), sys.path)",
    "import tqdm.auto\nprint([c.__module__ for c in tqdm.auto.tqdm.__mro__][:3])",
    "import transformers\ntransformers.logging.get_logger('transformers').warning('a library warning')",
    "import logging\nprint(sorted(type(h).__name__ for h in logging.getLogger('transformers').handlers))",
    "import matplotlib\nprint(matplotlib.get_backend())",
    "import torch\ntorch.set_num_threads(1)\nprint(torch.get_num_threads(), (torch.ones(300, 300) @ torch.ones(300, 300))[0, 0].item())",
    "import warnings\nwarnings.warn('a user warning')",
    "import threading\nprint(sorted(t.name for t in threading.enumerate() if t.name != 'lifeline'))",
]


def _run(manager: KernelManager, cwd: Path, cells: list[str]) -> list[list[tuple]]:
    manager.start_kernel(cwd=str(cwd))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        outputs = []
        for code in cells:
            got: list[tuple] = []

            def keep(msg, got=got):
                if msg["msg_type"] == "stream":  # a warning names the cell's file, in a folder named by the pid
                    text = re.sub(r"ipykernel_\d+", "ipykernel_PID", msg["content"]["text"])
                    if got and got[-1][:2] == ("stream", msg["content"]["name"]):  # one print may come in pieces
                        got[-1] = ("stream", msg["content"]["name"], got[-1][2] + text)
                    else:
                        got.append(("stream", msg["content"]["name"], text))
                elif msg["msg_type"] in ("error", "execute_result", "display_data"):
                    got.append((msg["msg_type"], str(msg["content"].get("ename") or msg["content"].get("data"))))

            client.execute_interactive(code, output_hook=keep, timeout=120)
            outputs.append(got)
        return outputs
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


class _Fresh(KernelSpecManager):
    """This environment's ipykernel, started fresh (not through conftest.py's server, which nbval's goes to)."""

    def get_kernel_spec(self, kernel_name):
        return self.kernel_spec_class(resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict())


class _Warm(_Fresh):
    server: warm_kernels.Server

    def get_kernel_spec(self, kernel_name):
        spec = super().get_kernel_spec(kernel_name)
        spec.argv = self.server.argv()
        return spec


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = warm_kernels.Server(tmp_path_factory.mktemp("warm"))
    server.wait_ready()
    _Warm.server = server
    yield server
    server.stop()


def _warm_manager() -> KernelManager:
    return KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=_Warm())


def test_a_forked_kernel_prints_what_a_fresh_one_prints(server, tmp_path):
    manager = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=_Fresh())
    assert "ipykernel_launcher" in manager.kernel_spec.argv
    fresh = _run(manager, tmp_path, CELLS)
    forked = _run(_warm_manager(), tmp_path, CELLS)
    assert "tqdm.notebook" in fresh[1][0][2]  # progress bars are widgets
    assert fresh[2] == [("stream", "stderr", "[transformers] a library warning\n")]  # into the notebook
    for index, (a, b) in enumerate(zip(fresh, forked)):
        assert a == b, f"cell {index} ({CELLS[index].splitlines()[0]!r}): fresh {a} forked {b}"


def test_an_interrupt_reaches_the_cell_and_a_killed_launcher_ends_the_kernel(server, tmp_path):
    manager = _warm_manager()
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        pid: list[str] = []
        client.execute_interactive("import os; print(os.getpid())",
                                   output_hook=lambda m: pid.append(m["content"].get("text", "")), timeout=60)
        kernel_pid = int("".join(pid).strip())
        assert kernel_pid != manager.provisioner.process.pid  # the kernel is the server's child, not the launcher
        client.execute("import time; time.sleep(60)")
        time.sleep(1)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)  # SIGKILL to the launcher's process group
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{kernel_pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{kernel_pid}"), "the forked kernel outlived its killed launcher"
