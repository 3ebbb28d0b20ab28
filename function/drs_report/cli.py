"""The `drs-report` command.

Exit codes (a public contract, see README):
  0  report produced and every delivery succeeded (problems in jobs are not errors)
  1  no report could be produced
  2  bad configuration or usage: one line naming the key, no traceback
  3  report produced, but at least one delivery failed
  5  busy: another run holds the store's lease (store.sync); nothing stored or sent
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from drs_report import __version__, environment, logs
from drs_report.errors import ConfigError, DrsReportError
from drs_report.pipeline import EXIT_BUSY, EXIT_NO_REPORT, EXIT_OK, EXIT_USAGE

log = logs.get_logger("cli")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2 with one line (its default is 2 too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError("", f"{self.prog}: {message}; see --help")


def parse_duration(text: str) -> float:
    """'90s', '30m', '12h', '7d', '2w' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip().lower()
    try:
        number, unit = (text[:-1], units[text[-1]]) if text[-1] in units else (text, 1)
        seconds = float(number) * unit
    except (ValueError, IndexError):
        raise ConfigError("--since", f"{text!r} is not a duration like 90m, 12h or 7d") from None
    # float() also reads "nan", "inf" and negatives; none of them is a look-back window.
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError("--since", f"{text!r} must be a positive duration like 90m, 12h or 7d")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="drs-report",
        description="Status reports and alerts for Huawei Cloud DRS jobs: fetch batch and "
        "comparison progress, keep history, judge health, render and deliver.",
    )
    parser.add_argument("--version", action="version", version=f"drs-report {__version__}")
    parser.add_argument(
        "--log-level", default=None,
        help=f"DEBUG, INFO, WARNING or ERROR (default: ${environment.LOG_LEVEL} or INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="one cycle: fetch, store, analyse, render, deliver")
    run.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    run.add_argument("--force", action="store_true",
                     help="send digests and alerts even if this period's were already sent")
    run.add_argument("--dry-run", action="store_true",
                     help="render and show what would go where; send nothing")
    run.add_argument("--mode", choices=["digest", "alert"], action="append", dest="modes",
                     help="deliver only to channels of this mode (repeatable)")
    run.add_argument("--job", action="append", dest="job_ids", metavar="JOB_ID",
                     help="only this configured job (repeatable)")

    demo = sub.add_parser("demo", help="the whole cycle against the embedded DRS emulator")
    demo.add_argument("--out", type=Path, default=Path("drs-report-demo"),
                      help="directory for the reports and the SQLite file "
                           "(default: ./drs-report-demo)")

    emu = sub.add_parser("emulator", help="serve the DRS emulator (or, with --obs, the OBS "
                                          "emulator) over HTTP")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8080)
    emu.add_argument("--ak", default=None,
                     help=f"access key to accept (default: ${environment.AK})")
    emu.add_argument("--sk", default=None,
                     help=f"secret key to accept (default: ${environment.SK})")
    emu.add_argument("--project-id", default=None, help="project id to serve")
    emu.add_argument("--scenario", type=Path, default=None,
                     help="scenario TOML file (default: the built-in demo fleet)")
    emu.add_argument("--obs", action="store_true",
                     help="serve the OBS emulator instead: PUT/GET/HEAD/DELETE of objects, "
                          "path-style (http://HOST:PORT/BUCKET/KEY), signed with --ak/--sk")
    emu.add_argument("--bucket", action="append", dest="buckets", metavar="BUCKET",
                     help="with --obs: a bucket to serve (repeatable; default drs-report)")

    hist = sub.add_parser("history", help="the stored snapshots of one job, newest last")
    hist.add_argument("--config", required=True, type=Path)
    hist.add_argument("--job", required=True, dest="job_id", metavar="JOB_ID")
    hist.add_argument("--since", default="7d",
                      help="how far back, a positive duration: 90m, 12h, 7d, 2w (default 7d)")
    hist.add_argument("--format", choices=["json", "table"], default="table")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", parser_class=_Parser)
    upgrade = db_sub.add_parser("upgrade", help="create or migrate the schema")
    upgrade.add_argument("--config", required=True, type=Path)

    serve = sub.add_parser(
        "serve", help="serve chat-ops commands and the report archive over HTTP",
        description="Serve the HTTP side locally: /chat/slack, /chat/dingtalk, /chat/feishu "
        "(chat-ops commands) and /reports, /jobs/JOB_ID (the report archive), configured "
        "by the [web] section. Prints 'listening on http://HOST:PORT'; stops on SIGTERM or "
        "Ctrl-C.",
        epilog="example: drs-report serve --config config.toml --port 8080\n\n"
        "exit codes: 0 stopped; 2 bad configuration, or the port cannot be used",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080,
                       help="port to listen on, 0 for any free one (default: 8080)")

    pkg = sub.add_parser("package", help="build the deployable FunctionGraph zip")
    pkg.add_argument("--output", type=Path, default=Path("drs-report-function.zip"))
    pkg.add_argument("--python", default="3.12", choices=["3.10", "3.12", "local"],
                     help="FunctionGraph runtime to build for ('local': this interpreter)")
    pkg.add_argument("--platform", default="manylinux2014_x86_64")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        level = args.log_level or os.environ.get(environment.LOG_LEVEL, "INFO")
        if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("--log-level", f"{level!r} is not DEBUG, INFO, WARNING or ERROR")
        logs.configure(level)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return _dispatch(args)
    except ConfigError as e:
        print(f"drs-report: error: {logs.redact(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except DrsReportError as e:
        from drs_report.store.lease import StoreBusy

        if isinstance(e, StoreBusy):  # not an error: the other run does the work
            print(f"drs-report: {logs.redact(str(e))}", file=sys.stderr)
            return EXIT_BUSY
        print(f"drs-report: error: {logs.redact(str(e))}", file=sys.stderr)
        return EXIT_NO_REPORT
    except KeyboardInterrupt:
        print("drs-report: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so in one line, details only at DEBUG
        log.debug("unexpected error", exc_info=True)
        print(f"drs-report: internal error: {type(e).__name__}: {logs.redact(str(e))} "
              "(run with --log-level DEBUG for details)", file=sys.stderr)
        return EXIT_NO_REPORT


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        return _run(args)
    if command == "demo":
        from drs_report.demo import run_demo

        return run_demo(args.out)
    if command == "emulator":
        if args.obs:
            return _serve_obs(args)
        from drs_report.emulator.server import serve

        return serve(host=args.host, port=args.port, ak=args.ak, sk=args.sk,
                     project_id=args.project_id, scenario=args.scenario)
    if command == "history":
        from drs_report.config import load_settings

        since_seconds = parse_duration(args.since)
        settings = load_settings(args.config)
        from drs_report.history import show_history

        return show_history(settings, args.job_id, since_seconds=since_seconds,
                            output_format=args.format, out=sys.stdout)
    if command == "db":
        if args.db_command != "upgrade":
            raise ConfigError("", "drs-report db: expected 'upgrade'; see --help")
        from drs_report.config import load_settings
        from drs_report.store import Store

        settings = load_settings(args.config)
        store = Store.open(settings.store.url)
        try:
            store.upgrade()
        finally:
            store.close()
        print(f"schema is up to date at {Store.masked_url(settings.store.url)}")
        return EXIT_OK
    if command == "serve":
        from drs_report.web import server

        return server.serve(config=args.config, host=args.host, port=args.port)
    if command == "package":
        from drs_report.packaging import build_package

        return build_package(output=args.output, python=args.python, platform=args.platform)
    raise ConfigError("", f"unknown command {command!r}; see --help")


def _serve_obs(args: argparse.Namespace) -> int:
    import signal
    import threading

    from drs_report.emulator import DEMO_AK, DEMO_SK
    from drs_report.emulator.obs import ObsEmulator

    emulator = ObsEmulator(ak=args.ak or os.environ.get(environment.AK) or DEMO_AK,
                           sk=args.sk or os.environ.get(environment.SK) or DEMO_SK,
                           security_token=os.environ.get(environment.SECURITY_TOKEN) or None,
                           buckets=args.buckets or ["drs-report"], host=args.host,
                           port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        emulator.start()
    except OSError as e:
        raise ConfigError("--port", f"cannot listen on {args.host}:{args.port}: "
                          f"{e.strerror or e}; choose another --port (0 picks a free one) "
                          "or --host") from None
    try:
        print(f"listening on {emulator.url}", flush=True)
        stop.wait()
    finally:
        emulator.stop()
    print("stopped", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from drs_report.config import load_settings
    from drs_report.pipeline import run_cycle
    from drs_report.secrets import credentials_from_environment

    settings = load_settings(args.config)
    credentials = credentials_from_environment(os.environ)
    if credentials is None:
        raise ConfigError(environment.AK, f"no credentials; export {environment.AK} and "
                                          f"{environment.SK} (and {environment.SECURITY_TOKEN} "
                                          "for temporary credentials)")
    started = time.monotonic()
    result = run_cycle(settings, credentials, trigger="cli", force=args.force,
                       dry_run=args.dry_run, job_ids=args.job_ids, modes=args.modes)
    counts = result.report.counts()
    summary = ", ".join(f"{n} {h.lower()}" for h, n in counts.items() if n)
    log.info("run %s finished in %.1fs: %s", result.run_id, time.monotonic() - started,
             summary or "no jobs")
    for fmt, path in result.outputs.items():
        print(f"{fmt}: {path}")
    for outcome in result.deliveries:
        print(outcome.describe())
    if result.partial:
        print("note: the time budget ran out; the report is partial", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    logging.captureWarnings(True)
    sys.exit(main())
