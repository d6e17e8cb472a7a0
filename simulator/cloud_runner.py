"""The demo's cloud connector: ``python -m cloud_connector`` as a subprocess, with the demo site registered.

:class:`CloudService` writes a TOML configuration in its directory, creates the CPO party
(FR*CAR), registers the site (its uplink token), issues a credentials token A for an eMSP, then
serves on 127.0.0.1 until :meth:`stop`. The admin commands are the operator's own CLI, run as
the operator would run them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
import logging
from pathlib import Path
import subprocess
import sys
import textwrap
import time
from typing import Any

import aiohttp

_LOGGER = logging.getLogger("simulator.cloud")

START_TIMEOUT_S = 60.0


class CloudError(RuntimeError):
    """The cloud connector could not be set up."""


@dataclass
class CloudService:
    """One cloud connector process for the demo."""

    directory: Path
    port: int
    python: str = sys.executable
    site_token: str | None = None
    peer: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def uplink_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/uplink/v1"

    @property
    def config_path(self) -> Path:
        return self.directory / "cloud.toml"

    def write_config(self) -> None:
        """A configuration for 127.0.0.1 with its SQLite file in :attr:`directory`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            textwrap.dedent(
                f"""\
                # Written by simulator/cloud_runner.py for the demo.
                [server]
                host = "127.0.0.1"
                port = {self.port}

                [database]
                path = "{self.directory / "cloud.sqlite3"}"

                [logging]
                level = "INFO"
                json = false
                """
            )
        )

    def admin(self, *args: str) -> dict[str, Any]:
        """Run one operator command and return its JSON answer."""
        command = [self.python, "-m", "cloud_connector", "--config", str(self.config_path), "admin", *args]
        done = subprocess.run(command, capture_output=True, check=False, timeout=60)  # noqa: S603 - our own CLI
        if done.returncode != 0:
            raise CloudError(f"cloud_connector admin {' '.join(args)}: {done.stderr.decode().strip()}")
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    async def start(self, site_name: str = "Demo", site_id: str = "demo") -> None:
        """Register the party, the site and an eMSP token A, then serve (returns once /healthz answers)."""
        self.write_config()
        await asyncio.to_thread(
            self.admin, "create-party", "--country-code", "FR", "--party-id", "CAR", "--name", "Cariflex demo"
        )
        site = await asyncio.to_thread(self.admin, "register-site", "--name", site_name, "--id", site_id)
        self.site_token = str(site["token"])
        await asyncio.to_thread(self.admin, "publish-site", site_id)
        self.peer = await asyncio.to_thread(self.admin, "create-peer", "--name", "Demo eMSP")
        self.process = self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.poll() is not None:
                    raise CloudError(f"the cloud connector exited with code {self.process.returncode}")
                try:
                    async with session.get(f"{self.base_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise CloudError("the cloud connector did not answer /healthz in time")
                await asyncio.sleep(0.2)
        _LOGGER.info("cloud connector on %s (site %s registered)", self.base_url, site_id)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.directory / "cloud.log").open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own service
                [self.python, "-m", "cloud_connector", "--config", str(self.config_path), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def stop(self) -> int | None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        return process.returncode
