"""``rtproxy`` command line: serve, logs, hash-key, simulate."""

from __future__ import annotations

import argparse
import errno
import functools
import gc
import getpass
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..auth.keys import MIN_KEY_CHARS, hash_key
from ..config import Config, ServerConfig, is_loopback_host, load_config, parse_config
from ..errors import ConfigError, StartupFailed
from ..spend.log import LogCursor, iter_records
from .ports import bind_main_port, check_other_ports
from .lazy_import import import_off_loop
from .startup import banner, config_failure, startup_failure

if TYPE_CHECKING:
    # what serve_main loads by name with the first HTTP request, named here too: for type
    # checkers, and for tests/test_architecture.py, which sees imports, not module names in strings
    from . import app as _app  # noqa: F401
    from .http_leg import HttpSide

log = logging.getLogger("rtproxy")

#: How often ``rtproxy logs --follow`` looks for new records.
FOLLOW_POLL_S = 0.5


def _load(path: str, overrides: dict[str, Any]) -> Config:
    if not overrides:
        return load_config(path)
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(str(p), "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "", f"not valid TOML: {exc}") from None
    data.setdefault("server", {}).update(overrides)
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)


async def serve_main(cfg: Config, *, worker: int | None = None,
                     task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the whole server in this trio run until SIGINT/SIGTERM.

    ``worker`` is set in ``--workers N`` processes: both ports are then bound with SO_REUSEPORT
    so the kernel spreads connections over the workers.
    """
    # the ports before anything else starts: a port in use is then the first and only line
    # (ports.py); the supervisor of --workers has tried the realtime and metrics ports already
    main_sockets = bind_main_port(cfg.server, reuse_port=worker is not None)
    if worker is None:
        check_other_ports(cfg.server)

    from ..auth.admission import is_session_path
    from .front import serve_main_port
    from .gateway import Gateway

    gateway = Gateway(cfg, reuse_port=worker is not None)

    async def load_http() -> HttpSide:
        """The pages and REST endpoints, loaded by the first HTTP request (front.py): Quart, its
        routes and hypercorn's HTTP server imported, and the app built (some 17 ms of route
        registration), off the event loop; sessions may be running. Not frozen as start-up's
        modules are (below): the sessions open now would be frozen with it."""
        http_leg = await import_off_loop("rtproxy.server.http_leg")
        app_module = await import_off_loop("rtproxy.server.app")
        app = await trio.to_thread.run_sync(functools.partial(app_module.create_app, gateway=gateway,
                                                              owns_services=False))
        return http_leg.HttpSide(cfg, app)  # type: ignore[no-any-return]

    async def shutdown_trigger() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:  # logrotate's postrotate: reopen the spend log now
                    gateway.reopen_spend_log()
                    continue
                log.info("received %s: closing sessions", signal.Signals(signum).name)
                break
        # Close sessions (1001, records written) before the main port stops serving.
        await gateway.drain()

    ssl_context = gateway.server_ssl_context()
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.run)  # the state store, the realtime listener, the offline model
        async with trio.open_nursery() as main_port:
            # the banner only once both ports listen: a port in use fails before anything is printed
            await main_port.start(functools.partial(
                serve_main_port, cfg, load_http, gateway.run_session, gateway.connections, is_session_path,
                ssl_context, socks=main_sockets, shutdown_trigger=shutdown_trigger, http_on_demand=True))
            # Everything loaded so far (modules, config, the price database, the offline model's
            # libraries: some 70,000 objects) lives as long as the process: moved out of the cyclic
            # collector's reach, a full collection under load pauses the event loop half as long
            # (98 → 54 ms at 200 voice sessions, bench/PROFILE.md).
            gc.collect()
            gc.freeze()
            gc.enable()  # off while starting when launched by the command (rtproxy/__main__.py)
            if not worker:  # worker None (single process) or 0
                _print_banner(cfg, gateway)
            task_status.started(gateway)
        # the main port has stopped, its sessions closed (shutdown_trigger): now the services
        await gateway.shutdown()
        await gateway.scans.aclose()


def _print_banner(cfg: Config, gateway: Any) -> None:
    print(banner(cfg, gateway), flush=True)


def _run_server(cfg: Config, debug: bool, worker: int | None = None) -> int:
    """Run until stopped: 0; a start-up failure: one line and 2 (the traceback too with --debug)."""
    try:
        trio.run(functools.partial(serve_main, cfg, worker=worker))
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:  # noqa: BLE001 - classified below, re-raised unless explained
        message = startup_failure(exc)
        if message is None or debug or os.environ.get("RTPROXY_DEBUG") == "1":
            raise
        prefix = f"rtproxy [worker {worker}]" if worker is not None else "rtproxy"
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)
        return 2
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.realtime_port is not None:
        overrides["realtime_port"] = args.realtime_port
    try:
        cfg = _load(args.config, overrides)
    except ConfigError as exc:
        print(f"rtproxy: {config_failure(exc)}", file=sys.stderr)
        return 2
    if not is_loopback_host(cfg.server.host):
        log.warning("serving on %s: reachable from other machines", cfg.server.host)
    if args.workers > 1:
        try:  # before any worker starts (each binds the ports with SO_REUSEPORT)
            for sock in bind_main_port(cfg.server):
                sock.close()
            check_other_ports(cfg.server)
        except StartupFailed as exc:
            print(f"rtproxy: {exc}", file=sys.stderr)
            return 2
        return _run_workers(args.config, overrides, args.workers, args.debug)
    return _run_server(cfg, args.debug)


#: Linux prctl(2) option: the signal a process gets when the thread that started it exits.
PR_SET_PDEATHSIG = 1


def _die_with_supervisor(supervisor_pid: int) -> None:
    """A worker must not outlive its supervisor: killed (``kill -9``, the OOM killer), it can no
    longer pass SIGTERM on, and orphaned workers would keep serving both ports (SO_REUSEPORT)
    beside the next ``rtproxy serve``. On Linux the kernel sends this worker SIGTERM (its graceful
    shutdown) when the supervisor dies; a supervisor already gone by now means exit at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor_pid:
        sys.exit(0)


def _worker_entry(config_path: str, overrides: dict[str, Any], worker: int, debug: bool,
                  supervisor_pid: int | None = None) -> None:
    if supervisor_pid is not None:
        _die_with_supervisor(supervisor_pid)
    logging.basicConfig(level=os.environ.get("RTPROXY_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s %(levelname)s [w{worker}] %(name)s: %(message)s")
    sys.exit(_run_server(_load(config_path, overrides), debug, worker=worker))


def _run_workers(config_path: str, overrides: dict[str, Any], n: int, debug: bool = False) -> int:
    """Run ``n`` worker processes sharing both ports; SIGINT/SIGTERM are passed on to them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    # Workers must accept each other's ephemeral tokens: without a configured token_secret they
    # share one generated here (it never leaves these processes).
    from .gateway import WORKER_TOKEN_SECRET_ENV

    os.environ.setdefault(WORKER_TOKEN_SECRET_ENV, secrets.token_urlsafe(32))
    # metrics whole across the workers: each writes its figures under one directory, and any
    # worker's /metrics sums them (prometheus-client's multiprocess mode); fresh for each run
    from .metrics import MULTIPROC_ENV

    cfg = _load(config_path, overrides)
    metrics_dir = cfg.resolve_path(cfg.server.state_dir) / f"prometheus-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    procs = [ctx.Process(target=_worker_entry, args=(config_path, overrides, i, debug, os.getpid()),
                         name=f"rtproxy-worker-{i}") for i in range(n)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGHUP if signum == signal.SIGHUP else signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    for p in procs:
        p.join()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return max((p.exitcode or 0) for p in procs)


#: The table's columns: (heading, width, whole). With the cost column they are 118 wide: the
#: table fits a 120-column terminal. A ``whole`` cell is never cut (a session id, to be pasted
#: into ``--session``: ``sess_rtp_`` + 20 hex digits); a longer key or model name is cut with
#: "…". The rest of a record (tokens, response ids, a session's start) is in ``--json``.
_COLUMNS = (("time", 19, False), ("record", 13, False), ("session", 29, True), ("key", 10, False),
            ("model", 14, False), ("status", 10, False))
_COST_WIDTH = 11


def _cell(value: Any, width: int, whole: bool) -> str:
    text = str(value if value is not None else "")
    if len(text) > width and not whole:
        text = text[:width - 1] + "…"
    return text.ljust(width)


def _fmt_row(r: dict[str, Any]) -> str:
    """One record as a table row. A session record is written when the session ends: it is
    stamped with its end time, so rows come in time order."""
    cost = r.get("cost_usd")
    cost_s = f"${cost:.6f}" if isinstance(cost, (int, float)) else "n/a"
    kind = r.get("record")
    stamp = (r.get("end_time") or r.get("start_time")) if kind == "session" else (r.get("start_time") or r.get("time"))
    values = (str(stamp or "")[:19], kind or "?", r.get("session_id"), r.get("key_name"), r.get("model"),
              r.get("status"))
    cells = [_cell(v, w, whole) for v, (_, w, whole) in zip(values, _COLUMNS)]
    return "  ".join(cells) + f"  {cost_s:>{_COST_WIDTH}}"


def _header() -> str:
    return "  ".join(h.ljust(w) for h, w, _ in _COLUMNS) + f"  {'cost (USD)':>{_COST_WIDTH}}"


def _no_records(args: argparse.Namespace, path: Path | str, *, ledger: bool = False) -> str:
    """What ``rtproxy logs`` says when it printed no record."""
    where = f"the ledger {path}" if ledger else str(path)
    asked = [f"{what} {value!r}" for what, value in (("session", args.session), ("key", args.key)) if value]
    if asked:
        return f"no records for {' and '.join(asked)} in {where}"
    return f"no records in {where} (a record is written when a response or a session ends)"


def cmd_logs(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"rtproxy: {config_failure(exc)}", file=sys.stderr)
        return 2
    path = cfg.resolve_path(args.file or cfg.spend_log.path)
    printed = 0

    def wanted(r: dict[str, Any]) -> bool:
        sid = r.get("session_id")
        return ((args.session is None or (isinstance(sid, str) and sid.startswith(args.session)))
                and (args.key is None or r.get("key_name") == args.key))

    def emit(r: dict[str, Any]) -> None:
        nonlocal printed
        if not args.json and printed == 0 and not args.follow:
            print(_header())
        print(json.dumps(r, ensure_ascii=False) if args.json else _fmt_row(r), flush=True)
        printed += 1

    try:
        if not args.json and args.follow:  # the header at once: the rows come as they are written
            print(_header(), flush=True)
        if args.file is None:
            return _logs_from_ledger(cfg, args, emit, lambda: printed)
        cursor = LogCursor()
        for _, record in iter_records(path, cursor=cursor):
            if wanted(record):
                emit(record)
        if not args.follow:
            if printed == 0:  # said on stderr, status 1 (as grep): an empty table looks like a hang or a bug
                print(f"rtproxy: {_no_records(args, path)}", file=sys.stderr)
                return 1
            return 0
        while True:
            time.sleep(FOLLOW_POLL_S)
            # the cursor restarts in the new file after a rotation or truncation
            for _, record in iter_records(path, cursor=cursor):
                if wanted(record):
                    emit(record)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # `rtproxy logs | head`: the reader has what it wanted. Point stdout at /dev/null so
        # Python's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _logs_from_ledger(cfg: Any, args: argparse.Namespace, emit: Any, printed: Any) -> int:
    from ..ledger.logs_command import LedgerError, follow, open_for_reading, read_records

    try:
        ledger = open_for_reading(cfg)
    except LedgerError as exc:
        print(f"rtproxy: {exc} (rtproxy logs --file reads the spend log itself)", file=sys.stderr)
        return 1
    try:
        records, head = read_records(ledger, args.session, args.key)
        for record in records:
            emit(record)
        if args.follow:
            follow(cfg, ledger, args.session, args.key, head(), emit)
        if printed() == 0:
            print(f"rtproxy: {_no_records(args, ledger.target.display, ledger=True)}", file=sys.stderr)
            return 1
        return 0
    except LedgerError as exc:
        print(f"rtproxy: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()


def cmd_hash_key(args: argparse.Namespace) -> int:
    key = args.key
    if key in (None, "-"):
        key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("key: ")
    if not key:
        print("rtproxy: no key given", file=sys.stderr)
        return 2
    if len(key) < MIN_KEY_CHARS:
        # the digest is printed all the same (the operator decides), but the gateway would refuse
        # this key written as `key`, and a short key is guessable however it is stored
        print(f"rtproxy: warning: this key is only {len(key)} characters long: the gateway refuses keys under "
              f"{MIN_KEY_CHARS} characters (as `key`), and a short key is easy to guess however it is stored; "
              f"use at least {MIN_KEY_CHARS} random characters", file=sys.stderr)
    print(hash_key(key))
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from ..ledger.commands import migrate_command, ship_command

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"rtproxy: {config_failure(exc)}", file=sys.stderr)
        return 2
    return migrate_command(cfg) if args.action == "migrate" else ship_command(cfg)


def cmd_keys(args: argparse.Namespace) -> int:
    from ..ledger.key_commands import keys_command, teams_command

    logging.getLogger("rtproxy.ledger").setLevel(logging.WARNING)  # the command's answer, not the migrations

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"rtproxy: {config_failure(exc)}", file=sys.stderr)
        return 2
    return keys_command(cfg, args) if args.command == "keys" else teams_command(cfg, args)


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..offline.server import serve_offline_model

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(functools.partial(
                serve_offline_model, args.host, args.port, None, args.stream_delay_ms / 1000, speech=args.speech))
            print(f"offline realtime model on ws://{args.host}:{port}/v1/realtime", flush=True)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    except (OSError, BaseExceptionGroup) as exc:  # from trio's nursery: in a group
        if not _address_in_use(exc):
            raise
        print(f"rtproxy: port {args.host}:{args.port} is already in use (pass --port, or 0 for a free one)",
              file=sys.stderr)
        return 2
    return 0


def _address_in_use(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_address_in_use(inner) for inner in exc.exceptions)
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def _version() -> str:
    import importlib.metadata  # only for --version: some 20 ms of every start-up otherwise

    try:
        return importlib.metadata.version("rtproxy")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtproxy", description="Gateway for realtime voice + text LLM sessions.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    default_config = os.environ.get("RTPROXY_CONFIG", "config.toml")
    config_help = "the config file (default: $RTPROXY_CONFIG, else config.toml in this directory; here: %(default)s)"
    server = {f.name: f.default for f in attrs.fields(ServerConfig)}

    p = sub.add_parser(
        "serve", help="run the gateway",
        description="Run the gateway until SIGINT or SIGTERM: the main port (playground, REST API, "
                    "/v1/realtime) and the realtime listener, as the config file says. --host, --port "
                    "and --realtime-port override its [server] settings; without them (and without "
                    "those settings) the defaults below apply. A start-up failure is one line on stderr "
                    "and exit status 2.")
    p.add_argument("--config", default=default_config, help=config_help)
    p.add_argument("--host", help=f"the address both ports bind (default: [server].host, else {server['host']})")
    p.add_argument("--port", type=int,
                   help=f"the main port (default: [server].port, else {server['port']})")
    p.add_argument("--realtime-port", type=int, dest="realtime_port",
                   help=f"the realtime listener's port; 0 picks a free one, -1 turns it off "
                        f"(default: [server].realtime_port, else {server['realtime_port']})")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes sharing both ports with SO_REUSEPORT (default: %(default)s)")
    p.add_argument("--debug", action="store_true",
                   help="show the whole traceback of a start-up failure (default: off; RTPROXY_DEBUG=1 "
                        "turns it on too)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("logs", help="print the spend records as a table (or JSON)",
                       description="Print the spend records of the ledger ([ledger] url: every server's, "
                                   "every rotated log's; this host's spend log is shipped to it first when no "
                                   "gateway here does) as a table, oldest first; a session's row comes when it "
                                   "ended. --file reads a spend log (JSONL) itself instead. The table fits 120 "
                                   "columns; --json has every field (tokens, response ids, ...). Exit status: "
                                   "0, 1 if no record matched (said on stderr), 2 for a config error.")
    p.add_argument("--config", default=default_config, help=config_help)
    p.add_argument("--file", nargs="?", const="", default=None, metavar="PATH",
                   help="read a spend log file directly, not the ledger (PATH: default [spend_log].path)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing records as they are written (across log rotations)")
    p.add_argument("--session", metavar="ID", help="only this session's records (a prefix of the id is enough)")
    p.add_argument("--key", metavar="NAME", help="only records of this key name")
    p.add_argument("--json", action="store_true", help="one JSON record per line instead of the table")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("hash-key", help="print the sha256 to put in key_sha256 (reads stdin when KEY is '-')",
                       description="Print the sha256 digest of a key, for [[keys]] key_sha256. Warns (stderr) "
                                   f"on a key shorter than {MIN_KEY_CHARS} characters.")
    p.add_argument("key", nargs="?", metavar="KEY",
                   help="the key; '-' or none: read it from stdin (or prompt), out of the shell's history")
    p.set_defaults(func=cmd_hash_key)

    p = sub.add_parser("simulate", help="run only the offline realtime model",
                       description="Serve the offline model alone (no keys, no spend log) until SIGINT.")
    p.add_argument("--host", default="127.0.0.1", help="the address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8002, help="the port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--stream-delay-ms", type=float, default=5.0, dest="stream_delay_ms",
                   help="the pause between a response's chunks (default: %(default)s)")
    p.add_argument("--speech", choices=["auto", "off"], default="auto",
                   help="hear with pocketsphinx and speak with espeak-ng when installed (auto), or not (off) "
                        "(default: %(default)s)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("ledger", help="the spend ledger: migrate its schema, or ship the spend log to it",
                       description="migrate: apply the ledger's schema migrations not applied yet (the gateway "
                                   "also does at start-up). ship: ship the spend log to the ledger until SIGINT "
                                   "or SIGTERM (the gateway ships by itself while it runs).")
    p.add_argument("action", choices=["migrate", "ship"])
    p.add_argument("--config", default=default_config, help=config_help)
    p.set_defaults(func=cmd_ledger)

    from ..ledger.key_commands import add_key_options

    p = sub.add_parser("keys", help="create, list, change, rotate and revoke keys in the ledger",
                       description="Keys as data, in the ledger ([ledger] url): every running server picks a "
                                   "change up within a second. A new or rotated key's secret is printed once "
                                   "and stored only as a hash. Keys of config.toml are listed, read-only. "
                                   "Exit status: 0, 1 if the change was refused (said on stderr), 2 for a "
                                   "config error.")
    keys = p.add_subparsers(dest="action", required=True)
    for action, helptext in (("create", "make a key (its secret printed once)"), ("list", "every key, with its spend"),
                             ("get", "one key as JSON"), ("update", "change a key's limits, models, team or expiry"),
                             ("rotate", "give a key a new secret"), ("revoke", "revoke a key: its sessions end")):
        q = keys.add_parser(action, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        q.add_argument("--config", default=default_config, help=config_help)
        q.add_argument("--json", action="store_true", help="JSON instead of words")
        if action == "list":
            q.add_argument("--team", help="only this team's keys")
            q.add_argument("--all", action="store_true", help="revoked keys too")
            continue
        q.add_argument("name", help="the key's name (what its spend records carry)")
        if action in ("create", "update"):
            add_key_options(q)
        if action == "create":
            q.add_argument("--key", dest="key_value", metavar="SECRET",
                           help="use this secret instead of generating one (16+ characters)")
        if action == "rotate":
            q.add_argument("--grace", default="0s",
                           help="how long the old secret keeps working: 0s (default), 15m, 1h, 7d")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("teams", help="create, list, change and delete teams (a budget over several keys)",
                       description="Teams in the ledger: a budget of their own, enforced with each member "
                                   "key's (the tighter wins). Keys join a team with `rtproxy keys update NAME "
                                   "--team TEAM`.")
    teams = p.add_subparsers(dest="action", required=True)
    for action in ("create", "list", "get", "update", "delete"):
        q = teams.add_parser(action, help=f"{action} a team" if action != "list" else "every team, with its spend")
        q.add_argument("--config", default=default_config, help=config_help)
        q.add_argument("--json", action="store_true", help="JSON instead of words")
        if action != "list":
            q.add_argument("name", help="the team's name")
        if action in ("create", "update"):
            add_key_options(q, team=False)
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("RTPROXY_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.func is not cmd_serve or args.workers > 1:
        gc.enable()  # off for the start-up (rtproxy/__main__.py): serve_main turns it back on
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
