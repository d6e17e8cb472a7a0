"""``python -m cloud_connector``: ``serve`` runs the service, ``admin ...`` manages it.

Admin commands print one JSON object on stdout and return 0; on failure they print the reason on
stderr and return 1 (2 for a bad configuration or command line).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
import json
import logging
from pathlib import Path
import re
import signal
import sys
from typing import Any, TextIO
import uuid

from aiohttp import web

from .app import Service
from .config import Config, ConfigError, config_with, load_config
from .jsonlog import setup_logging
from .ocpi import cdrs, credentials, tariffs
from .ocpi.objects import tariff_object
from .repo.core import CoreRepo, Party
from .repo.peers import PeerRepo
from .repo.tariffs import TariffRepo
from .secrets_util import hash_token, new_token
from .timeutil import format_dt

_LOGGER = logging.getLogger(__name__)


class CommandError(Exception):
    """An admin command cannot be done; the message is for the operator."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cloud_connector", description="Cariflex cloud connector")
    parser.add_argument("--config", type=Path, help="TOML configuration file (also CARIFLEX_CLOUD_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    admin = commands.add_parser("admin", help="operator commands").add_subparsers(dest="action", required=True)
    party = admin.add_parser("create-party", help="add one of our CPO identities")
    party.add_argument("--country-code", required=True)
    party.add_argument("--party-id", required=True)
    party.add_argument("--name", required=True)
    party.add_argument("--website")
    admin.add_parser("list-parties")

    site = admin.add_parser("register-site", help="add a site and print its uplink token")
    site.add_argument("--name", required=True)
    site.add_argument("--id", dest="site_id", help="site id, also the OCPI Location.id (default: generated)")
    site.add_argument("--party", help="CC*PID of the owning CPO party (default: the only one)")
    admin.add_parser("list-sites")
    rotate_site = admin.add_parser("rotate-site-token", help="replace a site's uplink token")
    rotate_site.add_argument("site_id")
    publish = admin.add_parser("publish-site", help="publish a site's Location over OCPI, or stop")
    publish.add_argument("site_id")
    publish.add_argument("--off", action="store_true")

    token_a = admin.add_parser("create-peer", help="issue a credentials token A for a peer to register with")
    token_a.add_argument("--name", required=True)
    admin.add_parser("list-peers")
    register = admin.add_parser("register-peer", help="register with a peer that gave us its token A")
    register.add_argument("--name", required=True)
    register.add_argument("--versions-url", required=True)
    register.add_argument("--token", required=True)
    rotate = admin.add_parser("rotate-peer", help="new credentials tokens both ways with a peer")
    rotate.add_argument("peer_id", type=int)
    unregister = admin.add_parser("unregister-peer", help="end the OCPI connection with a peer")
    unregister.add_argument("peer_id", type=int)
    unregister.add_argument("--force", action="store_true", help="forget the peer even if it does not answer")

    tariff = admin.add_parser("set-tariff", help="create or replace a tariff (OCPI Tariff JSON, without owner/id)")
    tariff.add_argument("--id", dest="tariff_id", required=True)
    tariff.add_argument("--file", type=Path, required=True, help="JSON file ('-' for stdin)")
    tariff.add_argument("--party", help="CC*PID of the owning CPO party (default: the only one)")
    delete = admin.add_parser("delete-tariff")
    delete.add_argument("tariff_id")
    admin.add_parser("list-tariffs")
    for name in ("assign-tariff", "unassign-tariff"):
        assign = admin.add_parser(name, help="a tariff on every connector of a site, or of one EVSE")
        assign.add_argument("tariff_id")
        assign.add_argument("--site", required=True)
        assign.add_argument("--evse", help="EVSE uid (default: the whole site)")
    credit = admin.add_parser("credit-cdr", help="send a Credit CDR, optionally followed by a corrected CDR")
    credit.add_argument("cdr_id")
    credit.add_argument("--reissue", action="store_true", help="issue a new CDR for the same session")
    credit.add_argument("--tariff", help="price the new CDR with this tariff")

    admin_token = admin.add_parser("create-admin-token", help="a token for the operator API")
    admin_token.add_argument("--name", required=True)
    return parser


def _out(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _party_key(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z]{2})\*?([A-Za-z0-9]{3})", text)
    if not match:
        raise CommandError(f"party must look like FR*CAR, got {text!r}")
    return match.group(1).upper(), match.group(2).upper()


def _party_json(party: Party) -> dict[str, Any]:
    return {
        "country_code": party.country_code,
        "party_id": party.party_id,
        "name": party.name,
        "website": party.website,
    }


async def _admin(service: Service, args: argparse.Namespace, out: TextIO) -> None:
    ctx = service.ctx
    core = CoreRepo(ctx.db)
    now = ctx.clock()
    action = args.action
    if action == "create-party":
        country, party_id = _party_key(f"{args.country_code}*{args.party_id}")
        party = Party(country_code=country, party_id=party_id, name=args.name, website=args.website)
        if not await core.add_party(party, now):
            raise CommandError(f"party {country}*{party_id} exists")
        _out(out, _party_json(party))
    elif action == "list-parties":
        _out(out, [_party_json(party) for party in await core.parties()])
    elif action == "register-site":
        chosen = await _choose_party(core, args.party)
        site_id = args.site_id or f"site-{uuid.uuid4().hex[:8]}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,35}", site_id):
            raise CommandError("site id: 1 to 36 letters, digits, '.', '_' or '-'")
        token = new_token()
        if not await core.add_site(site_id, chosen, args.name, hash_token(token), now):
            raise CommandError(f"site {site_id} exists")
        _out(out, {"site_id": site_id, "token": token, "party": f"{chosen.country_code}*{chosen.party_id}"})
    elif action == "list-sites":
        _out(
            out,
            [
                {
                    "site_id": site.id,
                    "name": site.name,
                    "party": f"{site.country_code}*{site.party_id}",
                    "publish": site.publish,
                    "last_seq": site.last_seq,
                }
                for site in await core.sites()
            ],
        )
    elif action == "rotate-site-token":
        token = new_token()
        if not await core.set_site_token(args.site_id, hash_token(token)):
            raise CommandError(f"no site {args.site_id}")
        _out(out, {"site_id": args.site_id, "token": token})
    elif action == "publish-site":
        if not await core.set_site_publish(args.site_id, not args.off, now):
            raise CommandError(f"no site {args.site_id}")
        _out(out, {"site_id": args.site_id, "publish": not args.off})
    elif action == "set-tariff":
        party = await _choose_party(core, args.party)
        text = sys.stdin.read() if str(args.file) == "-" else _read(args.file)
        try:
            raw = json.loads(text)
        except ValueError as problem:
            raise CommandError(f"{args.file}: not JSON ({problem})") from None
        _out(out, await _tariffs(tariffs.set_tariff(ctx, args.tariff_id, raw, (party.country_code, party.party_id))))
    elif action == "delete-tariff":
        await _tariffs(tariffs.delete_tariff(ctx, args.tariff_id))
        _out(out, {"tariff_id": args.tariff_id, "deleted": True})
    elif action == "list-tariffs":
        _out(out, [tariff_object(t) for t in await TariffRepo(ctx.db).all() if not t.deleted])
    elif action in {"assign-tariff", "unassign-tariff"}:
        remove = action == "unassign-tariff"
        await _tariffs(tariffs.assign_tariff(ctx, args.tariff_id, args.site, args.evse, remove=remove))
        _out(out, {"tariff_id": args.tariff_id, "site": args.site, "evse": args.evse, "assigned": not remove})
    elif action == "credit-cdr":
        try:
            made = await cdrs.credit_cdr(ctx, args.cdr_id, reissue=args.reissue, tariff_id=args.tariff)
        except cdrs.CdrAdminError as problem:
            raise CommandError(str(problem)) from problem
        _out(out, {"credit": made[0], "reissued": made[1] if len(made) > 1 else None})
    elif action == "create-peer":
        peer_id, token = await credentials.issue_token_a(ctx, args.name)
        _out(out, {"peer_id": peer_id, "token": token, "versions_url": ctx.versions_url})
    elif action == "list-peers":
        _out(out, [_peer_json(peer) for peer in await PeerRepo(ctx.db).all()])
    elif action == "register-peer":
        peer = await _registration(credentials.register_with(ctx, args.name, args.versions_url, args.token))
        _out(out, _peer_json(peer))
    elif action == "rotate-peer":
        _out(out, _peer_json(await _registration(credentials.rotate_with(ctx, args.peer_id))))
    elif action == "unregister-peer":
        await _registration(credentials.unregister_from(ctx, args.peer_id, force=args.force))
        _out(out, {"peer_id": args.peer_id, "status": "UNREGISTERED"})
    else:
        assert action == "create-admin-token"
        token = new_token()
        await core.add_admin_token(args.name, hash_token(token), now)
        _out(out, {"name": args.name, "token": token})


async def _choose_party(core: CoreRepo, wanted: str | None) -> Party:
    parties = await core.parties()
    if wanted:
        key = _party_key(wanted)
        chosen = next((p for p in parties if (p.country_code, p.party_id) == key), None)
        if chosen is None:
            raise CommandError(f"no party {wanted}")
        return chosen
    if len(parties) == 1:
        return parties[0]
    raise CommandError("create a party first" if not parties else "several parties: give --party")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as problem:
        raise CommandError(f"{path}: {problem.strerror}") from None


async def _tariffs[T](work: Awaitable[T]) -> T:
    try:
        return await work
    except tariffs.TariffAdminError as problem:
        raise CommandError(str(problem)) from problem


async def _registration[T](work: Awaitable[T]) -> T:
    try:
        return await work
    except credentials.RegistrationError as err:
        raise CommandError(str(err)) from err


def _peer_json(peer: Any) -> dict[str, Any]:
    return {
        "peer_id": peer.id,
        "name": peer.name,
        "status": peer.status,
        "version": peer.version,
        "versions_url": peer.versions_url,
        "parties": [f"{cc}*{pid}" for cc, pid in peer.parties()],
        "roles": sorted({str(role.get("role")) for role in peer.roles}),
        "last_exchange_at": format_dt(peer.last_exchange_at) if peer.last_exchange_at else None,
        "last_exchange": peer.last_exchange,
        "last_error": peer.last_error,
    }


async def serve(service: Service, stop: asyncio.Event, *, host: str, port: int) -> None:
    """Run the HTTP server until ``stop`` is set."""
    runner = web.AppRunner(service.app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await service.start()
        _LOGGER.info("Serving on %s:%s", host, port, extra={"public_url": service.config.public_url})
        await stop.wait()
    finally:
        await runner.cleanup()


async def run(
    argv: Sequence[str],
    *,
    environ: dict[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    service_factory: Callable[[Config], Awaitable[Service]] = Service.open,
) -> int:
    """The command line, in-process: parse, load the configuration, do the command; the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        config = load_config(args.config, environ)
        if args.command == "serve" and (args.host or args.port is not None):
            server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
            config = config_with(config, server=server)
    except ConfigError as problem:
        err.write(f"configuration error: {problem}\n")
        return 2
    if args.command == "serve":
        handler = setup_logging(config.logging.level, as_json=config.logging.json, stream=err)
        try:
            service = await service_factory(config)
            try:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                try:
                    await serve(service, stop, host=config.server.host, port=config.server.port)
                finally:
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(sig)
            finally:
                await service.close()
        finally:
            logging.getLogger().removeHandler(handler)
        return 0
    service = await service_factory(config)
    try:
        await _admin(service, args, out)
    except CommandError as problem:
        err.write(f"error: {problem}\n")
        return 1
    finally:
        await service.close()
    return 0


def main() -> None:  # pragma: no cover - the process entry point
    sys.exit(asyncio.run(run(sys.argv[1:])))
