"""A Redis server from the operating system's packages: the real-time store (the seed's ElastiCache)."""

from __future__ import annotations

import shutil

from etl_lib.config import RedisServiceConfig, ServicesConfig, secret_from_env
from etl_lib.errors import ServiceError
from etl_lib.io.clients import redis_client
from etl_lib.services.base import LocalService


class RedisService(LocalService):
    """``etl-suite services up redis``: loopback only, in memory (the Delta tables are the record)."""

    name = "redis"

    def __init__(self, services: ServicesConfig) -> None:
        super().__init__(services)
        self.redis: RedisServiceConfig = services.redis

    @property
    def endpoint(self) -> str:
        return self.redis.url

    def _start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceError("redis: redis-server not found; `make setup` installs it (Debian package redis-server)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        password = secret_from_env(self.redis.password_env)
        # Settings come on standard input ("-"), so that a password is on no command line and in no file.
        settings = f"requirepass {password}\n" if password else ""
        command = [
            server,
            "-",
            "--port",
            str(self.redis.port),
            "--bind",
            self.redis.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.state_dir),
            "--protected-mode",
            "yes",
            # Keep the command line as started: it identifies the process (and a rewrite races readers).
            "--set-proc-title",
            "no",
        ]
        self.process.start(command, marker=f"--port {self.redis.port} --bind {self.redis.host}", stdin_text=settings)

    def healthy(self) -> bool:
        try:
            return bool(redis_client(self.redis, timeout=2.0).ping())
        except Exception:  # noqa: BLE001 - not answering yet is what this probe reports
            return False
