"""kubectl as the record's client: every call with the API server's own time limit (--request-timeout), a
process time limit behind it, no stdin, in its own process group, killed with that group on a timeout.

The cluster is the one pulumi-kubernetes uses: $KUBECONFIG (a path list, or a kubeconfig's text, which the
provider also accepts) and the `kubernetes:context` of the stack when the caller passes it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..cli import Failure, printable

REQUEST_TIMEOUT = 10.0  # seconds the API server gets per request (--request-timeout)
PROCESS_MARGIN = 5.0  # what the process gets beyond it: start, auth plugins, discovery
KILL_WAIT = 5.0
_SERVER_ERROR = re.compile(r"Error from server \((\w+)\): (.*)", re.S)
ERROR_LIMIT = 300


class KubectlError(Failure):
    """A kubectl call failed. `reason`: the API's (AlreadyExists, Conflict, NotFound, Forbidden, ...), or
    Unreachable, Timeout, Missing (no kubectl), Unknown."""

    def __init__(self, reason: str, message: str, command: str):
        self.reason, self.detail, self.command = reason, message, command
        super().__init__(f"`{command}` failed ({reason}): {message}")


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


def reason_of(stderr: str) -> tuple[str, str]:
    """The API's reason and message from kubectl's error line ("Error from server (Conflict): ...")."""
    text = stderr.strip()
    found = _SERVER_ERROR.search(text)
    if found:
        return found.group(1), printable(" ".join(found.group(2).split()), ERROR_LIMIT)
    if "Unable to connect to the server" in text or "was refused" in text or "no such host" in text:
        return "Unreachable", printable(" ".join(text.split()), ERROR_LIMIT)
    if "Client.Timeout" in text or "deadline exceeded" in text or "i/o timeout" in text:
        return "Timeout", printable(" ".join(text.split()), ERROR_LIMIT)
    return "Unknown", printable(" ".join(text.split()) or "it printed no error", ERROR_LIMIT)


def _looks_like_content(kubeconfig: str) -> bool:
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith(("{", "apiVersion"))


@dataclass
class Kubectl:
    """Runs kubectl. `command`: the executable (a list, so that tests can run a stand-in under Python)."""

    command: Sequence[str] = ("kubectl",)
    context: Optional[str] = None
    request_timeout: float = REQUEST_TIMEOUT
    process_margin: float = PROCESS_MARGIN
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [*self.command, f"--request-timeout={self.request_timeout:g}s"]
        if self.context:
            argv.append(f"--context={self.context}")
        return argv + list(args)

    def run(self, *args: str, body: Optional[str] = None, body_flag: str = "-f") -> Done:
        """Run `kubectl ARGS` (with `body_flag FILE` holding `body`, a private temporary file): its result,
        or KubectlError for a missing kubectl or a call past its time limit."""
        with tempfile.TemporaryDirectory(prefix="bluegreen-kubectl-") as scratch:
            env = dict(self.env)
            config = env.get("KUBECONFIG", "")
            if config and _looks_like_content(config):  # the provider takes its text; kubectl wants a file
                path = Path(scratch) / "kubeconfig"
                path.write_text(config)
                path.chmod(0o600)
                env["KUBECONFIG"] = str(path)
            argv = list(args)
            if body is not None:
                path = Path(scratch) / "body.json"
                path.write_text(body)
                argv += [body_flag, str(path)]
            return self._run(self._argv(argv), env)

    def _run(self, argv: list[str], env: Mapping[str, str]) -> Done:
        shown = " ".join(["kubectl", *argv[len(self.command):]])
        limit = self.request_timeout + self.process_margin
        try:
            child = subprocess.Popen(argv, env=dict(env), text=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)
        except FileNotFoundError:
            raise KubectlError("Missing", "kubectl is not on PATH: install it "
                               "(https://kubernetes.io/docs/tasks/tools/) where release.py runs", shown) from None
        try:
            out, err = child.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            raise KubectlError("Timeout", f"no answer within {limit:g}s (--request-timeout "
                               f"{self.request_timeout:g}s + {self.process_margin:g}s): killed it", shown) from None
        except BaseException:  # a signal: the call must not outlive this process
            _kill_group(child)
            raise
        return Done(child.returncode, out or "", err or "")

    def call(self, *args: str, body: Optional[str] = None, body_flag: str = "-f") -> str:
        """Run kubectl; its stdout, or KubectlError with the API's reason."""
        done = self.run(*args, body=body, body_flag=body_flag)
        if done.code != 0:
            reason, message = reason_of(done.err)
            raise KubectlError(reason, message, " ".join(["kubectl", *args]))
        return done.out


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # its group: kubectl and any auth plugin it started
    except OSError:
        pass
    try:
        child.communicate(timeout=KILL_WAIT)
    except subprocess.TimeoutExpired:  # something outside the group holds the pipes
        for pipe in (child.stdout, child.stderr):
            if pipe:
                pipe.close()
        child.wait(timeout=KILL_WAIT)
