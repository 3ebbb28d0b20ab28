"""The `drs-report` command.

Exit codes (a public contract, see README; EXIT_CODES below is the one table):
  0  report produced and every delivery succeeded (problems in jobs are not errors)
  1  no report could be produced
  2  bad configuration or usage: one line naming the key, no traceback
  3  report produced, but at least one delivery failed
  4  nothing could be read (every job unread: keys, project, endpoint); the report is written
  5  busy: another run holds the store's lease (store.sync); nothing stored or sent
  6  readiness: some named job is not ready for cutover
  7  readiness: no named job is known not ready, but some job's readiness is unknown
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drs_report import __version__, environment, logs
from drs_report.errors import ConfigError, DrsReportError
from drs_report.pipeline import (
    EXIT_BUSY,
    EXIT_DELIVERY_FAILED,
    EXIT_NO_REPORT,
    EXIT_NOT_READY,
    EXIT_NOTHING_READ,
    EXIT_OK,
    EXIT_READINESS_UNKNOWN,
    EXIT_USAGE,
)

log = logs.get_logger("cli")


def _say(text: str, *, err: bool = False) -> None:
    """One outcome line for the terminal. What it quotes (an API's error text, a vendor's
    answer, a value from the configuration) loses escape sequences and C0/C1 controls, so
    it cannot recolour or clear the screen, set the title, write the clipboard (OSC 52) or
    forge a line."""
    from drs_report.render import terminal_inert

    print(terminal_inert(text), file=sys.stderr if err else sys.stdout)


class _TerminalSafe(logging.Filter):
    """The same for log lines, which reach the terminal on stderr (the run's cause, each
    delivery's reason). Runs after the redacting filter, which renders the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        from drs_report.render import terminal_inert

        record.msg = terminal_inert(record.getMessage(), keep_newlines=True)
        record.args = None
        if record.exc_text:
            record.exc_text = terminal_inert(record.exc_text, keep_newlines=True)
        return True

EXIT_CODES = {
    EXIT_OK: "report produced and every delivery succeeded (problems in jobs are not errors)",
    EXIT_NO_REPORT: "no report could be produced (e.g. the database is unreachable)",
    EXIT_USAGE: "bad configuration or usage (one line naming the key or flag)",
    EXIT_DELIVERY_FAILED: "report produced, but at least one delivery failed",
    EXIT_NOTHING_READ: "nothing could be read: every job unread (wrong keys or project, "
                       "endpoint unreachable); the report is still written",
    EXIT_BUSY: "busy: another run holds the store's lease (store.sync); nothing stored or "
               "sent",
    EXIT_NOT_READY: "readiness: some named job is not ready for cutover",
    EXIT_READINESS_UNKNOWN: "readiness: no named job is known not ready, but some job's "
                            "readiness is unknown (not read, a gap in the readings, a "
                            "comparison not read lately)",
}
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([A-Za-z]*)$")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2 with one line (its default is 2 too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError("", f"{self.prog}: {message}; see --help")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default at the end of its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if action.default is False and action.nargs == 0:
            return f"{text} (default: off)"
        if action.default is not None:
            return f"{text} (default: %(default)s)"
        return text


def _epilog(examples: Sequence[str], codes: Sequence[int | tuple[int, str]],
            note: str = "") -> str:
    """Examples, a note, and the exit codes (a code alone means what EXIT_CODES says)."""
    lines = ["example:" if len(examples) == 1 else "examples:"]
    lines += [f"  {example}" for example in examples]
    if note:
        lines += ["", note]
    lines += ["", "exit codes:"]
    for item in codes:
        code, meaning = item if isinstance(item, tuple) else (item, EXIT_CODES[item])
        lines.append(f"  {code}  {meaning}")
    return "\n".join(lines)


def parse_duration(text: str) -> float:
    """'90s', '30m', '12h', '7d', '2w' -> seconds. Units are lower case: 'M' is not months."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ConfigError("--since", f"{text!r} is not a positive duration like 90m, 12h or 7d")
    number, unit = match.groups()
    if float(number) <= 0:
        raise ConfigError("--since", f"{text!r} must be a positive duration like 90m, 12h or 7d")
    if not unit:
        raise ConfigError("--since", f"{text!r} has no unit; write it like 90m, 12h or 7d "
                                     "(units: s, m, h, d, w)")
    if unit not in DURATION_UNITS:
        raise ConfigError("--since", f"unknown unit {unit!r} in {text!r}; use s, m, h, d or w "
                                     "(for months write days, e.g. 30d)")
    return float(number) * DURATION_UNITS[unit]


def parse_log_level(text: str) -> tuple[str, dict[str, str]]:
    """'DEBUG' or 'DEBUG,sqlalchemy=INFO' or 'sqlalchemy=DEBUG' -> (ours, {library: level})."""
    ours = "INFO"
    libraries: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, level = item.rpartition("=")
        if level.upper() not in logs.LEVELS:
            raise ConfigError("--log-level", f"{level!r} is not one of "
                                             f"{', '.join(logs.LEVELS)}; e.g. --log-level DEBUG "
                                             "or --log-level DEBUG,sqlalchemy=INFO")
        if name:
            libraries[name.strip()] = level.upper()
        else:
            ours = level.upper()
    return ours, libraries


def _add_log_level(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    parser.add_argument(
        "--log-level", default=None if top else argparse.SUPPRESS, metavar="LEVEL",
        help="DEBUG, INFO, WARNING or ERROR, for drs-report's own messages; libraries "
             "(sqlalchemy, alembic, urllib3, huaweicloudsdkcore) stay at WARNING unless "
             "named, e.g. DEBUG,sqlalchemy=DEBUG (default: "
             f"${environment.LOG_LEVEL}, else INFO); also accepted after the command")


def _command(sub: Any, name: str, summary: str, examples: Sequence[str],
             codes: Sequence[int | tuple[int, str]], note: str = "") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.",
        epilog=_epilog(examples, codes, note), formatter_class=_HelpFormatter)
    _add_log_level(parser)
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError("--port", f"{text!r} is not a port number; use 1-65535 "
                                    "(0 picks a free one)") from None
    if not 0 <= value <= 65535:
        raise ConfigError("--port", f"{value} is not a TCP port; use 1-65535 "
                                    "(0 picks a free one)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="drs-report",
        description="Status reports and alerts for Huawei Cloud DRS jobs: fetch batch and "
        "comparison progress, keep history, judge health, render and deliver.",
        epilog=_epilog(["drs-report demo", "drs-report run --config config.toml"],
                       sorted(EXIT_CODES), "run 'drs-report COMMAND --help' for a command's "
                                           "options"),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"drs-report {__version__}")
    _add_log_level(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = _command(
        sub, "run", "one cycle: fetch, store, analyse, render, deliver",
        ["drs-report run --config config.toml",
         "drs-report run --config config.toml --dry-run --out preview/",
         "drs-report run --config config.toml --job 9a470239-2308-4bb5-a6bc-1040402fjb21"],
        [EXIT_OK, EXIT_NO_REPORT, EXIT_USAGE, EXIT_DELIVERY_FAILED, EXIT_NOTHING_READ,
         EXIT_BUSY],
        "credentials come from $HUAWEICLOUD_SDK_AK and $HUAWEICLOUD_SDK_SK "
        "(and $HUAWEICLOUD_SDK_SECURITY_TOKEN for temporary ones)")
    run.add_argument("--config", required=True, type=Path, metavar="FILE",
                     help="TOML configuration file (required)")
    run.add_argument("--force", action="store_true",
                     help="send digests and alerts even if this period's were already sent")
    run.add_argument("--dry-run", action="store_true",
                     help="read the DRS API and the history, then say what a real run would "
                          "send or skip, and why; store, claim, send and write nothing "
                          "(report files only with --out)")
    run.add_argument("--mode", choices=["digest", "alert"], action="append", dest="modes",
                     help="deliver only to channels of this mode; repeatable "
                          "(default: every channel)")
    run.add_argument("--job", action="append", dest="job_ids", metavar="JOB_ID",
                     help="only this configured job id; repeatable. A narrowed run sends "
                          "nothing and leaves alert and digest state alone (default: every job)")
    run.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write report.html/.md/.txt/.json here instead of report.output_dir "
                          "(default: report.output_dir; a dry run writes none without it)")

    demo = _command(
        sub, "demo", "a simulated day of readings against the embedded DRS emulator",
        ["drs-report demo --out ./drs-report-demo"],
        [(EXIT_OK, "the day's reports were written"), EXIT_NO_REPORT, EXIT_USAGE],
        "it prints the configuration it wrote and the two commands that use it again")
    demo.add_argument("--out", type=Path, default=Path("drs-report-demo"), metavar="DIR",
                      help="directory for the reports, config.toml and history.db")
    demo.add_argument("--port", type=_port, default=8080,
                      help="port for the demo's emulator, and for the one the printed "
                           "command starts (a busy port: any free one)")

    emu = _command(
        sub, "emulator", "serve the DRS emulator (or, with --obs, the OBS one) over HTTP until "
        "interrupted",
        ["drs-report emulator --port 8080", "drs-report emulator --obs --port 9000"],
        [(EXIT_OK, "stopped by Ctrl-C or SIGTERM"), EXIT_USAGE],
        "at start it prints the URL, the project id, the key it accepts and the job ids")
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emu.add_argument("--port", type=_port, default=8080,
                     help="port to listen on; 0 picks a free one")
    emu.add_argument("--ak", default=None,
                     help=f"access key to accept (default: ${environment.AK}, else the "
                          "built-in demo key)")
    emu.add_argument("--sk", default=None,
                     help=f"secret key to accept (default: ${environment.SK}, else the "
                          "built-in demo key's)")
    emu.add_argument("--project-id", default=None,
                     help="project id to serve (default: 5237e10fe9aa4ad5b16b6a5245248314)")
    emu.add_argument("--scenario", type=Path, default=None, metavar="FILE",
                     help="scenario TOML file (default: the built-in demo fleet)")
    emu.add_argument("--start", default=None, metavar="TIME",
                     help="wall-clock time of the scenario's minute 0, e.g. "
                          "2026-11-21T08:00:00Z; `demo` prints the one its day began at "
                          "(default: now)")
    emu.add_argument("--obs", action="store_true",
                     help="serve the OBS emulator instead: PUT/GET/HEAD/DELETE of objects, "
                          "path-style (http://HOST:PORT/BUCKET/KEY), signed with --ak/--sk")
    emu.add_argument("--bucket", action="append", dest="buckets", metavar="BUCKET",
                     help="with --obs: a bucket to serve; repeatable (default: drs-report)")

    hist = _command(
        sub, "history", "the stored readings of one job, newest last",
        ["drs-report history --config config.toml --job 9a470239-2308-4bb5-a6bc-1040402fjb21 "
         "--since 12h"],
        [(EXIT_OK, "readings printed (none in the window is not an error)"),
         (EXIT_NO_REPORT, "the history could not be read"), EXIT_USAGE])
    hist.add_argument("--config", required=True, type=Path, metavar="FILE",
                      help="TOML configuration file (required)")
    hist.add_argument("--job", required=True, dest="job_id", metavar="JOB_ID",
                      help="the job's DRS id (required); with several targets TARGET/JOB_ID "
                           "also names the target")
    hist.add_argument("--target", default=None, metavar="NAME",
                      help="the target (its name in [[drs.targets]], or its project id) the "
                           "job belongs to; needed only when the id has readings in several "
                           "(default: the one target with readings of the id)")
    hist.add_argument("--since", default="7d", metavar="DURATION",
                      help="how far back, a positive number with a unit: s, m, h, d or w, "
                           "e.g. 90m, 12h, 7d, 2w")
    hist.add_argument("--format", choices=["json", "table"], default="table",
                      help="json (the API's field names, values as stored) or a table (one "
                           "line per reading; escape sequences and control characters in "
                           "the API's text removed)")

    ready = _command(
        sub, "readiness", "the cutover verdict of each job, from the stored history",
        ["drs-report readiness --config config.toml",
         "drs-report readiness --config config.toml --job 9a470239-2308-4bb5-a6bc-1040402fjb21 "
         "--format json",
         "until drs-report readiness --config config.toml --job 9a470239-2308-4bb5-a6bc-"
         "1040402fjb21; do sleep 60; done"],
        [(EXIT_OK, "every named job is ready for cutover"),
         (EXIT_NO_REPORT, "the history could not be read"), EXIT_USAGE, EXIT_NOT_READY,
         EXIT_READINESS_UNKNOWN],
        "ready: full phase done, incremental delay at or below readiness.max_delay_seconds "
        "for readiness.stable_minutes, comparisons consistent and read lately; see README. "
        "Nothing is fetched or stored unless --live (whose reading is still not stored); "
        "a store kept in OBS is read without its lease. Not ready (6) wins over unknown (7)")
    ready.add_argument("--config", required=True, type=Path, metavar="FILE",
                       help="TOML configuration file (required)")
    ready.add_argument("--job", action="append", dest="job_ids", metavar="JOB_ID",
                       help="only this configured job id; repeatable (default: every job)")
    ready.add_argument("--format", choices=["text", "json"], default="text",
                       help="text, or json (the verdicts as report.json's readiness)")
    ready.add_argument("--live", action="store_true",
                       help="also read the jobs from DRS now and judge that reading with the "
                            "history; the reading is not stored (needs credentials)")

    db_codes: list[int | tuple[int, str]] = [
        (EXIT_OK, "the schema is up to date"),
        (EXIT_NO_REPORT, "the database could not be reached or migrated"), EXIT_USAGE]
    db = _command(sub, "db", "database maintenance",
                  ["drs-report db upgrade --config config.toml"], db_codes)
    db_sub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", parser_class=_Parser)
    upgrade = _command(db_sub, "upgrade", "create or migrate the schema (run does it too)",
                       ["drs-report db upgrade --config config.toml"], db_codes)
    upgrade.add_argument("--config", required=True, type=Path, metavar="FILE",
                         help="TOML configuration file (required)")

    serve = _command(
        sub, "serve", "serve chat-ops commands and the report archive over HTTP",
        ["drs-report serve --config config.toml --port 8080"],
        [(EXIT_OK, "stopped by Ctrl-C or SIGTERM"),
         (EXIT_USAGE, "bad configuration, or the port cannot be used")],
        "/chat/slack, /chat/dingtalk and /chat/feishu answer chat-ops commands; /reports and "
        "/jobs/JOB_ID are the report archive; configured by [web]. It prints "
        "'listening on http://HOST:PORT'")
    serve.add_argument("--config", required=True, type=Path, metavar="FILE",
                       help="TOML configuration file (required)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8080,
                       help="port to listen on; 0 picks a free one")

    pkg = _command(
        sub, "package", "build the deployable FunctionGraph zip",
        ["drs-report package --config config.toml --python 3.12 --output drs-report.zip"],
        [(EXIT_OK, "the zip was built"), (EXIT_NO_REPORT, "the zip could not be built"),
         (EXIT_USAGE, "bad flag, or the --config file is wrong (the run's own one-line error)")],
        "the zip holds index.py, drs_report, the dependencies at the versions of the committed "
        "lock for --python, their bytecode and the templates compiled by that Python "
        "(python3.X on PATH or pyenv; without one the zip has neither), and the checked "
        "--config as config.toml; the same sources give the same bytes")
    pkg.add_argument("--output", type=Path, default=Path("drs-report-function.zip"),
                     help="where to write the zip")
    pkg.add_argument("--python", default="3.12", choices=["3.10", "3.12"],
                     help="FunctionGraph runtime to build for: Python3.12 or Python3.10; must "
                          "match the function's runtime")
    pkg.add_argument("--platform", default="manylinux2014_x86_64",
                     help="wheel platform; FunctionGraph runs x86_64 Linux, so only "
                          "manylinux2014_x86_64")
    pkg.add_argument("--config", type=Path, default=None, metavar="FILE",
                     help="check FILE as a run would (a bad file fails the build with the "
                          "run's one-line error), list the ${NAME}s it needs at run time, "
                          "and pack it as config.toml beside index.py (default: no config in "
                          "the zip)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        level, libraries = parse_log_level(
            args.log_level or os.environ.get(environment.LOG_LEVEL, "INFO"))
        logs.configure(level, libraries=libraries).addFilter(_TerminalSafe())
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return _dispatch(args)
    except ConfigError as e:
        _say(f"drs-report: error: {logs.redact(str(e))}", err=True)
        return EXIT_USAGE
    except DrsReportError as e:
        from drs_report.store.lease import StoreBusy

        if isinstance(e, StoreBusy):  # not an error: the other run does the work
            _say(f"drs-report: {logs.redact(str(e))}", err=True)
            return EXIT_BUSY
        _say(f"drs-report: error: {logs.redact(str(e))}", err=True)
        return EXIT_NO_REPORT
    except KeyboardInterrupt:
        print("drs-report: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: say so in one line, details only at DEBUG
        log.debug("unexpected error", exc_info=True)
        _say(f"drs-report: internal error: {type(e).__name__}: {logs.redact(str(e))} "
             "(run with --log-level DEBUG for details)", err=True)
        return EXIT_NO_REPORT


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        return _run(args)
    if command == "demo":
        from drs_report.demo import run_demo

        return run_demo(args.out, port=args.port)
    if command == "emulator":
        if args.obs:
            from drs_report.emulator.cli import serve_obs

            return serve_obs(host=args.host, port=args.port, ak=args.ak, sk=args.sk,
                             buckets=args.buckets or ["drs-report"])
        from drs_report.emulator.cli import parse_start, serve

        start = parse_start(args.start) if args.start else None
        return serve(host=args.host, port=args.port, ak=args.ak, sk=args.sk,
                     project_id=args.project_id, scenario=args.scenario, start=start)
    if command == "history":
        from drs_report.config import load_settings

        since_seconds = parse_duration(args.since)
        settings = load_settings(args.config)
        from drs_report.history import show_history

        return show_history(settings, args.job_id, since_seconds=since_seconds,
                            output_format=args.format, out=sys.stdout, target=args.target)
    if command == "readiness":
        from drs_report.config import load_settings
        from drs_report.readiness_query import ask_readiness

        settings = load_settings(args.config)
        needs_credentials = args.live or settings.store.sync is not None
        return ask_readiness(settings, job_ids=args.job_ids, output_format=args.format,
                             live=args.live,
                             credentials=_credentials() if needs_credentials else None,
                             out=sys.stdout)
    if command == "db":
        if args.db_command != "upgrade":
            raise ConfigError("", "drs-report db: expected 'upgrade'; see --help")
        from drs_report.config import load_settings
        from drs_report.store import Store

        settings = load_settings(args.config)
        store = Store.open(settings.store.url)
        try:
            # History from before targets is attributed to the configured single target.
            store.upgrade(project_id=settings.single_project())
        finally:
            store.close()
        _say(f"schema is up to date at {Store.masked_url(settings.store.url)}")
        return EXIT_OK
    if command == "serve":
        from drs_report.web import server

        return server.serve(config=args.config, host=args.host, port=args.port)
    if command == "package":
        from drs_report.packaging import build_package

        return build_package(output=args.output, python=args.python, platform=args.platform,
                             config=args.config)
    raise ConfigError("", f"unknown command {command!r}; see --help")


def _credentials() -> Any:
    from drs_report.secrets import credentials_from_environment

    credentials = credentials_from_environment(os.environ)
    if credentials is not None:
        return credentials
    ak = os.environ.get(environment.AK, "").strip()
    sk = os.environ.get(environment.SK, "").strip()
    if ak and not sk:
        raise ConfigError(environment.SK, f"is not set, but {environment.AK} is; export the "
                                          "secret key of that access key")
    if sk and not ak:
        raise ConfigError(environment.AK, f"is not set, but {environment.SK} is; export the "
                                          "access key that secret key belongs to")
    raise ConfigError(environment.AK, f"no credentials; export {environment.AK} and "
                                      f"{environment.SK} (and {environment.SECURITY_TOKEN} "
                                      "for temporary credentials)")


def _run(args: argparse.Namespace) -> int:
    from drs_report.config import check_output_dir, load_settings
    from drs_report.pipeline import run_cycle, scoped_jobs

    if args.out is not None:
        check_output_dir(args.out, "--out")
    settings = load_settings(args.config)
    if args.job_ids:
        scoped_jobs(settings, args.job_ids)  # an unknown --job is a usage error up front
    credentials = settings.without_shared_keys() or _credentials()
    started = time.monotonic()
    result = run_cycle(settings, credentials, trigger="cli", force=args.force,
                       dry_run=args.dry_run, job_ids=args.job_ids, modes=args.modes,
                       output_dir=args.out)
    counts = result.report.counts()
    summary = ", ".join(f"{n} {h.lower()}" for h, n in counts.items() if n) or "no jobs"
    cause = result.cause()
    kind = "dry run" if args.dry_run else f"run {result.run_id}"
    log.info("%s finished in %.1fs: %s%s", kind, time.monotonic() - started, summary,
             f"; {cause}" if cause else "")
    for fmt, path in result.outputs.items():
        _say(f"{fmt}: {path}")
    if args.dry_run and not result.outputs:
        _say("dry run: no report files written (add --out DIR to write them)")
    for outcome in result.deliveries:
        _say(outcome.describe())
    if result.partial:
        _say("note: the time budget ran out; the report is partial", err=True)
    if result.nothing_read:
        _say(f"drs-report: error: {cause}", err=True)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    logging.captureWarnings(True)
    sys.exit(main())
