"""Sluice's servers besides the operator (the triggers server, the
dashboard) as child processes of the tests, under an installation's
identity (its ServiceAccount token), ready once their /healthz answers."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import urllib.error
import urllib.request

from tests.integration.conftest import ROOT, wait_for
from tests.integration.installed import Installation


class ChildServer:
    def __init__(
        self, module: str, installed: Installation, log: pathlib.Path, port: int, **env: str
    ) -> None:
        self.port = port
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={
                **os.environ,
                "KUBECONFIG": str(installed.kubeconfig),
                "PYTHONPATH": str(ROOT / "operator"),
                **env,
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_for(f"{module} to be ready", self._ready, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"the server exited: {self.log.read_text()[-2000:]}"
        try:
            return urllib.request.urlopen(f"{self.url}/healthz", timeout=2).status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
