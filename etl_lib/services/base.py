"""What every local service has in common: a state folder, a managed process, a health check."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from etl_lib.config import ServicesConfig, is_loopback
from etl_lib.errors import ServiceError
from etl_lib.services.process import ManagedProcess, ServiceStatus, port_is_open


class _Listening(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class LocalService(ABC):
    """A real server on loopback, started on demand and stopped afterwards."""

    #: The service's name, which is also the name of its section of ``services``.
    name: str

    def __init__(self, services: ServicesConfig) -> None:
        self.services = services
        self.section: _Listening = getattr(services, self.name)
        self.state_dir = Path(services.work_dir) / self.name
        self.process = ManagedProcess(self.name, self.state_dir)

    @property
    def host(self) -> str:
        """Interface the server listens on."""
        return self.section.host

    @property
    def port(self) -> int:
        """Main port of the server."""
        return self.section.port

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """How clients reach it (URL or host:port)."""

    @abstractmethod
    def healthy(self) -> bool:
        """True when the server answers a real request (not just an open port)."""

    @abstractmethod
    def _start(self) -> None:
        """Prepare state if needed and start the server process."""

    def up(self) -> ServiceStatus:
        """Start the service unless it already runs, and wait until it is healthy.

        Raises:
            ServiceError: if the port is taken by another program, or the server does not come up.
        """
        if not is_loopback(self.host):
            raise ServiceError(
                f"{self.name}: services.{self.name}.host is {self.host}; the suite starts local servers on "
                "loopback only (127.0.0.1): a server elsewhere is used, not started"
            )
        if self.process.pid() is None:
            if port_is_open(self.host, self.port):
                raise ServiceError(
                    f"{self.name}: port {self.host}:{self.port} is already in use by a program the suite did not "
                    f"start; stop it or choose another port (services.{self.name}.port)"
                )
            self._start()
        self.process.wait_until(self._healthy_quietly, self.services.start_timeout_seconds, f"{self.endpoint}")
        return self.status()

    def _healthy_quietly(self) -> bool:
        return port_is_open(self.host, self.port) and self.healthy()

    def down(self) -> bool:
        """Stop the service. Returns True if it was running."""
        return self.process.stop()

    def status(self) -> ServiceStatus:
        """Whether the service runs and answers."""
        pid = self.process.pid()
        running = pid is not None and self._healthy_quietly()
        detail = "" if running else ("started, not answering" if pid else "stopped")
        return ServiceStatus(self.name, running, pid, self.endpoint, detail)
