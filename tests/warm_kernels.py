"""Notebook kernels forked from a server that has already imported torch, transformers and peft.

Every notebook the suite runs (about forty) starts a kernel, and every kernel imports the same libraries:
about 10 s of one core each on a 2-core CPU, a fifth of the suite. So each pytest worker starts one *server*
(`python tests/warm_kernels.py serve SOCKET`): a fresh, single-threaded process that imports the libraries
once and then only forks. A kernel's command line becomes `python tests/warm_kernels.py launch SOCKET -f CONN`:
the launcher hands its stdin/stdout/stderr and a lifeline pipe to the server, which forks a child that
runs an ordinary ipykernel on the connection file, in the launcher's folder and environment.

What keeps a forked kernel the same as a fresh one:
- the server is a fresh process that never computes: no OpenMP pool to inherit (a kernel forked from a
  pytest worker that had trained models once spun at full CPU), and no other Python thread;
- it imports no course code (course_lib reads its environment when imported, in the kernel, as before);
- `tqdm.auto` decides at import whether it runs in a notebook kernel: the server imports it while
  answering as one, so progress bars are the notebook's widgets, as in a fresh kernel;
- logging handlers that libraries created at import hold the server's stderr: the kernel points them at its
  own stderr stream, where a fresh kernel's would write;
- signals (interrupt, terminate) sent to the launcher go on to the kernel; when the launcher dies (a kill),
  the lifeline closes and the kernel exits; the launcher exits with the kernel's status.
tests/test_warm_kernels.py runs notebooks both ways and compares their outputs.
"""

from __future__ import annotations

import array
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

PRELOAD = ("numpy", "torch", "transformers", "transformers.models.llama.modeling_llama", "peft", "datasets")


# ---------------------------------------------------------------------------------------------- server side

def _preload() -> None:
    import IPython

    class _AsIfInAKernel:  # tqdm.autonotebook: ipykernel imported, and a shell that is not a Qt console's
        pass

    real = IPython.get_ipython
    IPython.get_ipython = lambda: _AsIfInAKernel()
    try:
        import ipykernel.kernelapp  # noqa: F401
        import ipykernel.zmqshell  # noqa: F401  (what tqdm.autonotebook looks for)
        import tqdm.auto  # noqa: F401  (notebook tqdm, as a kernel picks it)
        for name in PRELOAD:
            __import__(name)
    finally:
        IPython.get_ipython = real


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    msg, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_LEN(4 * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return json.loads(msg), list(fds)


def _run_kernel(request: dict, fds: list[int]) -> None:
    """In the forked child: become the launcher's kernel. Never returns."""
    code = 1
    try:
        stdin, stdout, stderr, lifeline = fds
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        del sys.path[0]  # this script's folder; ipykernel_launcher drops its own first entry the same way
        os.environ.clear()
        os.environ.update(request["env"])
        # ipykernel reads JPY_PARENT_PID when it is imported (the server had none): give it as an option
        sys.argv = ["ipykernel_launcher", *request["args"],
                    f"--IPKernelApp.parent_handle={int(os.environ.get('JPY_PARENT_PID') or 0)}"]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

        def watch() -> None:  # the launcher's end closes only when the launcher is gone
            while os.read(lifeline, 1):
                pass
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="lifeline").start()
        from ipykernel import kernelapp

        class IPKernelApp(kernelapp.IPKernelApp):  # the same name in its log lines
            def init_io(self) -> None:
                super().init_io()
                for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                    for handler in getattr(logger, "handlers", []):
                        if type(handler) is logging.StreamHandler and handler.stream is sys.__stderr__:
                            handler.setStream(sys.stderr)

        IPKernelApp.launch_instance()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str) -> None:
    _preload()
    if threading.active_count() != 1:
        raise RuntimeError(f"the server must not run Python threads before it forks: {threading.enumerate()}")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print("ready", flush=True)
    waiting: dict[int, socket.socket] = {}  # kernel pid -> its launcher's connection
    while True:
        readable, _, _ = select.select([server, sys.stdin], [], [], 0.1)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            break  # the pytest worker that started us is gone
        if server in readable:
            conn, _ = server.accept()
            request, fds = _recv_request(conn)
            pid = os.fork()
            if pid == 0:
                server.close()
                conn.close()
                _run_kernel(request, fds)
            for fd in fds:
                os.close(fd)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            waiting[pid] = conn
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
    for pid in waiting:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -------------------------------------------------------------------------------------------- launcher side

def launch(path: str, args: list[str]) -> int:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    lifeline, keep = os.pipe()  # `lifeline` goes to the kernel; `keep` stays open as long as we live
    request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    fds = [0, 1, 2, lifeline]
    conn.sendmsg([json.dumps(request).encode()],
                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    os.close(lifeline)
    reader = conn.makefile("r")
    pid = json.loads(reader.readline())["pid"]

    def forward(signum, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, forward)
    line = reader.readline()
    return json.loads(line)["status"] if line else 1


# ------------------------------------------------------------------------------------- for conftest.py

class Server:
    """One server per pytest worker; `argv()` is the kernel command line that uses it."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "warm-kernels.sock")
        self.process = subprocess.Popen([sys.executable, __file__, "serve", self.path], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self._ready = False

    def wait_ready(self, timeout: float = 120) -> None:
        if self._ready:
            return
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()  # blocks until the imports are done
        if line.strip() != "ready" or time.monotonic() > deadline:
            raise RuntimeError(f"the warm kernel server did not start ({line!r})")
        self._ready = True

    def argv(self) -> list[str]:
        return [sys.executable, __file__, "launch", self.path, "-f", "{connection_file}"]

    def stop(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "launch":
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
    else:
        raise SystemExit(f"usage: {sys.argv[0]} serve SOCKET | launch SOCKET -f CONNECTION_FILE")
