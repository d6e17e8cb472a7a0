"""Stage 1: configuration, storage and migrations, JSON logs, the admin CLI, ``serve`` and /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
from pathlib import Path
import re
import signal
import sqlite3
from typing import Any

import pytest

from cloud_connector import cli
from cloud_connector.config import ConfigError, config_with, load_config
from cloud_connector.jsonlog import JsonFormatter, setup_logging
from cloud_connector.storage import MigrationError, sqlite as sqlite_backend
from cloud_connector.storage.sqlite import SqliteDatabase

from .harness import bound_socket, environment, fetch, running_cpo

pytestmark = pytest.mark.usefixtures("socket_enabled")


# --- configuration ---------------------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, {})
    assert config.server.port == 8080
    assert config.ocpi.page_limit == 100
    assert config.public_url == "http://127.0.0.1:8080"


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(
        '[server]\nhost = "10.0.0.5"\nport = 9000\n[ocpi]\npage_limit = 20\nrequest_timeout = 3\n'
        '[database]\npath = "/var/lib/x.db"\n[logging]\njson = false\n',
        encoding="utf-8",
    )
    config = load_config(
        path,
        {"CARIFLEX_CLOUD_SERVER_PORT": "9100", "CARIFLEX_CLOUD_LOGGING_JSON": "yes", "OTHER": "ignored"},
    )
    assert config.server.port == 9100  # environment wins
    assert config.server.host == "10.0.0.5"
    assert config.ocpi.page_limit == 20
    assert config.ocpi.request_timeout == 3.0
    assert config.logging.json is True
    assert config.public_url == "http://10.0.0.5:9100"


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nbase_url = "https://cloud.example.com/"\n', encoding="utf-8")
    config = load_config(None, {"CARIFLEX_CLOUD_CONFIG": str(path)})
    assert config.public_url == "https://cloud.example.com"


@pytest.mark.parametrize(
    ("toml", "env", "problem"),
    [
        ('[server]\nport = "80"\n', {}, "server.port: expected an integer"),
        ("[server]\nport = 70000\n", {}, "server.port: must be between 0 and 65535"),
        ('[server]\nbase_url = "ftp://x"\n', {}, "server.base_url: must be an http(s) URL"),
        ('[server]\nbase_url = "http://x/?a=1"\n', {}, "server.base_url: must not have a query"),
        ("[server]\nhostname = 1\n", {}, "server.hostname: unknown setting"),
        ("[nope]\nx = 1\n", {}, "nope: unknown section"),
        ('server = "x"\n', {}, "server: expected a table"),
        ("[ocpi]\npage_limit = 0\n", {}, "ocpi.page_limit: must be between 1 and 1000"),
        ("[ocpi]\nrequest_timeout = true\n", {}, "ocpi.request_timeout: expected a number"),
        ("[ocpi]\nretry_initial = 0\n", {}, "ocpi.retry_initial: must be positive"),
        ("[ocpi]\nretry_max = 1\n", {}, "ocpi.retry_max: must not be below ocpi.retry_initial"),
        ("[ocpi]\ncommand_timeout = 0\n", {}, "ocpi.command_timeout: must be between 1 and 600"),
        ('[ocpi]\ncurrency = "eur"\n', {}, "ocpi.currency: must be an ISO 4217 code"),
        ('[database]\npath = ""\n', {}, "database.path: must not be empty"),
        ("[database]\npath = 3\n", {}, "database.path: expected a string"),
        ('[logging]\nlevel = "LOUD"\n', {}, "logging.level: must be DEBUG"),
        ('[logging]\njson = "yes"\n', {}, "logging.json: expected true or false"),
        ("", {"CARIFLEX_CLOUD_SERVER_PORT": "eighty"}, "server.port: expected an integer"),
        ("", {"CARIFLEX_CLOUD_OCPI_REQUEST_TIMEOUT": "soon"}, "ocpi.request_timeout: expected a number"),
        ("", {"CARIFLEX_CLOUD_LOGGING_JSON": "maybe"}, "logging.json: expected true or false"),
        ("", {"CARIFLEX_CLOUD_SERVR_PORT": "1"}, "CARIFLEX_CLOUD_SERVR_PORT: unknown setting"),
        ("", {"CARIFLEX_CLOUD_SERVER": "1"}, "CARIFLEX_CLOUD_SERVER: unknown setting"),
        ("", {"CARIFLEX_CLOUD_SERVER_PROT": "1"}, "server.prot: unknown setting"),
        ("[server\n", {}, "invalid TOML"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(
    tmp_path: Path, toml: str, env: dict[str, str], problem: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(path, env)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", {})


def test_changed_copies_are_validated_again() -> None:
    config = load_config(None, {})
    assert config_with(config, server={"port": 1}).server.port == 1
    with pytest.raises(ConfigError):
        config_with(config, ocpi={"page_limit": 0})


# --- logs ------------------------------------------------------------------------------------------


def test_json_log_lines_carry_extra_fields_and_exceptions() -> None:
    stream = io.StringIO()
    handler = setup_logging("debug", stream=stream)
    log = logging.getLogger("cloud_connector.test")
    try:
        log.info("hello %s", "world", extra={"peer": 7})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "hello world"
    assert first["peer"] == 7
    assert first["level"] == "INFO"
    assert first["logger"] == "cloud_connector.test"
    assert first["ts"].endswith("Z")
    assert "RuntimeError: boom" in second["exc"]


def test_plain_text_logs_when_asked() -> None:
    stream = io.StringIO()
    handler = setup_logging("INFO", as_json=False, stream=stream)
    try:
        logging.getLogger("cloud_connector.test").warning("plain")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "WARNING cloud_connector.test plain" in stream.getvalue()
    assert not isinstance(handler.formatter, JsonFormatter)


# --- storage ---------------------------------------------------------------------------------------


async def test_migrations_run_once_and_are_recorded(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    db = await SqliteDatabase.open(path)
    await db.close()
    db = await SqliteDatabase.open(path)
    try:
        rows = await db.fetchall("SELECT version, name FROM schema_migrations")
        mode = await db.fetchone("PRAGMA journal_mode")
    finally:
        await db.close()
    assert rows == [{"version": v, "name": n} for v, n, _ in sqlite_backend.migrations()]
    assert mode == {"journal_mode": "wal"}


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    await (await SqliteDatabase.open(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
        conn.commit()
    with pytest.raises(MigrationError, match="newer than this program"):
        await SqliteDatabase.open(path)


async def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = sqlite_backend.migrations()
    broken = [*shipped, (shipped[-1][0] + 1, "broken", "CREATE TABLE extra (x INTEGER);\nTHIS IS NOT SQL;")]
    monkeypatch.setattr(sqlite_backend, "migrations", lambda: broken)
    path = str(tmp_path / "db.sqlite3")
    with pytest.raises(MigrationError, match="broken failed"):
        await SqliteDatabase.open(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert "extra" not in tables
    assert versions == [v for v, _, _ in shipped]


async def test_a_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(str(tmp_path / "db.sqlite3"))
    try:

        async def fail() -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO admin_tokens VALUES ('h', 'n', 't')")
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await fail()
        assert await db.fetchall("SELECT * FROM admin_tokens") == []
    finally:
        await db.close()


# --- admin CLI -------------------------------------------------------------------------------------


async def test_parties_and_sites(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        code, _, err = await cpo.cli("register-site", "--name", "Home")
        assert code == 1
        assert "create a party first" in err
        party = await cpo.ok("create-party", "--country-code", "fr", "--party-id", "car", "--name", "Cariflex")
        assert party == {"country_code": "FR", "party_id": "CAR", "name": "Cariflex", "website": None}
        code, _, err = await cpo.cli("create-party", "--country-code", "FR", "--party-id", "CAR", "--name", "x")
        assert (code, err) == (1, "error: party FR*CAR exists\n")
        site = await cpo.ok("register-site", "--name", "Home")
        assert site["site_id"].startswith("site-")
        assert site["party"] == "FR*CAR"
        named = await cpo.ok("register-site", "--name", "Depot", "--id", "depot-1")
        assert named["site_id"] == "depot-1"
        code, _, err = await cpo.cli("register-site", "--name", "Again", "--id", "depot-1")
        assert (code, err) == (1, "error: site depot-1 exists\n")
        code, _, err = await cpo.cli("register-site", "--name", "Bad", "--id", "has space")
        assert code == 1
        assert "site id" in err
        sites = await cpo.ok("list-sites")
        assert [s["site_id"] for s in sites] == [site["site_id"], "depot-1"]
        assert sites[1] == {"site_id": "depot-1", "name": "Depot", "party": "FR*CAR", "publish": True, "last_seq": 0}
        assert await cpo.ok("publish-site", "depot-1", "--off") == {"site_id": "depot-1", "publish": False}
        code, _, _ = await cpo.cli("publish-site", "nope")
        assert code == 1

        # Only a digest of the token is stored.
        rows = await cpo.ctx.db.fetchall("SELECT token_hash FROM sites WHERE id = 'depot-1'")
        assert rows == [{"token_hash": hashlib.sha256(named["token"].encode()).hexdigest()}]
        with contextlib.closing(sqlite3.connect(cpo.config.database.path)) as conn:
            dump = "\n".join(conn.iterdump())
        assert named["token"] not in dump

        rotated = await cpo.ok("rotate-site-token", "depot-1")
        assert rotated["token"] != named["token"]
        code, _, _ = await cpo.cli("rotate-site-token", "nope")
        assert code == 1

        # With two parties the site must say which.
        await cpo.ok("create-party", "--country-code", "BE", "--party-id", "CFX", "--name", "Cariflex BE")
        code, _, err = await cpo.cli("register-site", "--name", "Two")
        assert "several parties" in err
        assert (await cpo.ok("register-site", "--name", "Two", "--party", "BE*CFX"))["party"] == "BE*CFX"
        code, _, err = await cpo.cli("register-site", "--name", "Two", "--party", "NL*ABC")
        assert (code, err) == (1, "error: no party NL*ABC\n")
        code, _, err = await cpo.cli("register-site", "--name", "Two", "--party", "nonsense")
        assert "party must look like FR*CAR" in err
        assert len(await cpo.ok("list-parties")) == 2


async def test_admin_tokens_are_stored_as_digests(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        made = await cpo.ok("create-admin-token", "--name", "ops")
        assert made["name"] == "ops"
        rows = await cpo.ctx.db.fetchall("SELECT token_hash, name FROM admin_tokens")
        assert rows == [{"token_hash": hashlib.sha256(made["token"].encode()).hexdigest(), "name": "ops"}]


async def test_command_line_and_configuration_errors(tmp_path: Path) -> None:
    err = io.StringIO()
    assert await cli.run(["admin", "list-peers"], environ={"CARIFLEX_CLOUD_SERVER_PORT": "x"}, err=err) == 2
    assert "configuration error: server.port" in err.getvalue()
    assert await cli.run(["admin"], environ={}, err=io.StringIO()) == 2
    assert await cli.run(["--help"], environ={}, out=io.StringIO()) == 0
    out = io.StringIO()
    env = environment(tmp_path, "http://127.0.0.1:1")
    assert await cli.run(["admin", "list-peers"], environ=env, out=out) == 0
    assert json.loads(out.getvalue()) == []


# --- serve -----------------------------------------------------------------------------------------


async def test_serve_answers_health_checks_and_stops_on_sigterm(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    err = io.StringIO()
    env = environment(tmp_path, f"http://127.0.0.1:{port}")
    task = asyncio.create_task(cli.run(["serve", "--host", "127.0.0.1", "--port", str(port)], environ=env, err=err))
    for _ in range(200):
        try:
            status, body, _ = await fetch("GET", f"http://127.0.0.1:{port}/healthz")
            break
        except OSError:
            await asyncio.sleep(0.02)
    assert (status, body) == (200, {"status": "ok"})
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) == 0
    lines = [json.loads(line) for line in err.getvalue().splitlines()]
    assert any(line["msg"].startswith("Serving on 127.0.0.1") for line in lines)


async def test_health_check_reports_a_broken_database(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        original: Any = cpo.ctx.db.fetchone

        async def broken(*args: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        cpo.ctx.db.fetchone = broken
        try:
            status, body, _ = await fetch("GET", f"{cpo.url}/healthz")
        finally:
            cpo.ctx.db.fetchone = original
    assert status == 503
    assert body == {"status": "error", "database": "disk I/O error"}
