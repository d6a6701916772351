"""``python -m grpc_service.forkserver``: one interpreter with torch imported, that each gRPC program forks its server from.

Importing torch leaves about 280 MiB private to every process that does it (81 MiB of it the static
data cuBLASLt writes as it loads, 110 MiB of heap), and each of the two gRPC programs paid it alone:
their servers were the largest processes of the service. gunicorn shares that import between its
workers by forking them from a master that made it; this program does the same for the gRPC servers,
while ``grpc`` and ``grpc2`` stay separate supervisord programs that an operator restarts one at a time.

Each gRPC program (``python -m grpc_service``, :mod:`grpc_service.forked`) connects to
``$DETECTOR_RUN_DIR/grpc-forkserver.sock`` and passes its stdout, stderr, environment, working directory
and two pipes. This process forks; the child takes them over, leaves for a process group of its own
(restarting this program does not stop it) and runs the gRPC server as the program would have. The
program relays its signals to the child and exits with the child's status:

- the *lifeline*: the child holds its read end and kills itself when it reads end of file, that is
  when the program is gone (``kill -9``, or supervisord's SIGKILL after ``stopwaitsecs``);
- the *status*: this process writes the child's exit status there when it reaps it (a signal
  ``n`` as ``128 + n``), and the child writes its own as it exits normally, so a status still
  arrives if this process was restarted meanwhile.

Only the import is shared: no model is loaded and no thread pool is started here, so nothing that
a fork would break is running. A program whose environment differs from this process's in what is
read only at import or start-up (``IMPORT_TIME_PREFIXES``, the interpreter) is refused and serves in
its own process, as it does when this program is not running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import traceback

from setproctitle import setproctitle

from common.settings import ServerSettings

# Read by libgomp, glibc, the loader or the interpreter as the process starts or torch loads: a child
# forked here keeps this process's values, so a program asking with other values is refused.
IMPORT_TIME_PREFIXES = ("GOMP_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "MALLOC_", "LD_", "PYTHON", "TORCH_", "CUDA_")
MESSAGE_BYTES = 1 << 20
# The descriptors a request carries, in this order.
FDS = ("stdout", "stderr", "lifeline", "status")


def import_time_environment(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith(IMPORT_TIME_PREFIXES)}


def exit_status(wait_status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 plus the signal that killed it."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status) & 0xFF


class ForkServer:
    """Answers each program's request with a forked server, one at a time; reaps the servers it forked."""

    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.environment = import_time_environment(dict(os.environ))
        self.status_fds: dict[int, int] = {}  # child pid -> the write end of its program's status pipe

    def refusal(self, request: dict) -> str | None:
        """Why a child forked here would not be the server the program would have run itself, if it would not."""
        if request.get("executable") != sys.executable:
            return f"the program runs {request.get('executable')}, this fork server {sys.executable}"
        theirs = import_time_environment(request.get("env", {}))
        if theirs != self.environment:
            differing = {name for name, _ in set(theirs.items()) ^ set(self.environment.items())}
            return f"environment differs in {', '.join(sorted(differing))}"
        return None

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: self.reap())
        while True:
            connection, _ = self.listener.accept()
            with connection:
                try:
                    self.answer(connection)
                except OSError as error:  # the program went away mid-request: it will ask again once restarted
                    print(f"grpc_service.forkserver: a request failed: {error}", file=sys.stderr, flush=True)

    def answer(self, connection: socket.socket) -> None:
        message, fds, _, _ = socket.recv_fds(connection, MESSAGE_BYTES, len(FDS))
        try:
            request = json.loads(message)
            if len(fds) != len(FDS):
                raise ValueError(f"expected {len(FDS)} descriptors, got {len(fds)}")
        except ValueError as error:
            for fd in fds:
                os.close(fd)
            connection.sendall(json.dumps({"refused": f"bad request: {error}"}).encode())
            return
        reason = self.refusal(request)
        if reason is not None:
            for fd in fds:
                os.close(fd)
            connection.sendall(json.dumps({"refused": reason}).encode())
            return
        # Held until the child's status pipe is on record, so that reap() cannot miss a child that dies at once.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                self.listener.close()
                connection.close()
                for other in self.status_fds.values():  # else a sibling would hold its program's status open
                    os.close(other)
                run_child(dict(zip(FDS, fds)), request)
            for name, fd in zip(FDS, fds):
                if name == "status":
                    self.status_fds[pid] = fd
                else:
                    os.close(fd)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        connection.sendall(json.dumps({"pid": pid}).encode())

    def reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self.status_fds.pop(pid, None)
            if fd is not None:
                try:
                    os.write(fd, bytes([exit_status(wait_status)]))
                except OSError:
                    pass  # the program is gone: nobody waits for this status
                os.close(fd)


def run_child(fds: dict[str, int], request: dict) -> None:
    """In the forked child: become the program's gRPC server, then exit with its status. Never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for fd in fds.values():
            os.set_inheritable(fd, False)
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        os.close(fds["stdout"])
        os.close(fds["stderr"])
        setproctitle(server_title(request))  # first: it takes over the environment's memory for a longer title
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        threading.Thread(target=_die_with_program, args=(fds["lifeline"],), name="lifeline", daemon=True).start()
        from grpc_service.forked import serve_in_child

        serve_in_child()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(fds["status"], bytes([code & 0xFF]))
        finally:
            os._exit(code)


def server_title(request: dict) -> str:
    """What ``ps`` shows for a forked server: the program it serves, not the fork server's command line.

    supervisord names each program in its environment (``SUPERVISOR_PROCESS_NAME``); a program
    started by hand is named by its pid.
    """
    program = f"pid {request['pid']}"
    name = request["env"].get("SUPERVISOR_PROCESS_NAME")
    return f"grpc_service server (forked for {f'{name}, {program}' if name else program})"


def _die_with_program(lifeline: int) -> None:
    """Block until the program that asked for this server is gone, then go too: it cannot be stopped otherwise."""
    while os.read(lifeline, 1):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    path = ServerSettings.from_env().grpc_forkserver_socket
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Bound before torch is imported: a program that starts meanwhile waits in the backlog.
    listener.bind(str(path))
    listener.listen(16)
    bound = os.stat(path).st_ino
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        import torch  # noqa: F401  (the import every child shares)

        ForkServer(listener).serve()
    finally:
        if path.exists() and os.stat(path).st_ino == bound:
            path.unlink()


if __name__ == "__main__":
    main()
