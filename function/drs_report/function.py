"""The FunctionGraph side: event, context, credentials, time budget, logging, summary.

`index.handler(event, context)` calls `handle`. It accepts the TIMER trigger's event
(`trigger_type: "TIMER"`, `user_event`: empty or a JSON string of overrides) and any other
event as a manual, on-demand invocation (its own keys are read as overrides). Overrides:

    {"mode": "digest"}  or {"modes": ["alert"]}   only channels of these modes
    {"jobs": ["<job id>", ...]}                    only these configured jobs
    {"force": true}    {"dry_run": true}

It never raises: every outcome is a JSON-serialisable summary with a `status` of "ok",
"delivery_failed", "nothing_read" (no job could be read: keys, project or endpoint),
"config_error", "error" or "busy" (another run holds the synced store's lease: nothing
stored or sent), so the function's monitoring shows what happened and a bad configuration
is not retried by the platform as if it were transient. Each invocation ends with one
summary line in the function's log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drs_report import environment, logs
from drs_report.errors import ConfigError, DrsReportError
from drs_report.secrets import agency_credentials, credentials_from_environment
from drs_report.store.lease import StoreBusy

log = logs.get_logger("function")

OVERRIDE_KEYS = ("mode", "modes", "jobs", "force", "dry_run")
# Keys a manual test event may carry besides overrides (FunctionGraph's own, or a timer's).
EVENT_KEYS = ("version", "time", "trigger_type", "trigger_name", "user_event")


@dataclass
class Invocation:
    trigger: str = "manual"
    modes: list[str] | None = None
    job_ids: list[str] | None = None
    force: bool = False
    dry_run: bool = False
    trigger_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_event(event: Any) -> Invocation:
    """The trigger and the overrides, from a TIMER event or a manual one."""
    if isinstance(event, (bytes, str)):
        event = _json_object(event, "event")
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise ConfigError("event", "expected a JSON object")
    if event.get("trigger_type") == "TIMER":
        invocation = Invocation(trigger="timer", trigger_name=event.get("trigger_name"))
        user_event = event.get("user_event") or ""
        overrides = _json_object(user_event, "user_event") if user_event else {}
        _apply(invocation, overrides, "user_event")
        return invocation
    invocation = Invocation(trigger="manual")
    overrides = {k: v for k, v in event.items() if k not in EVENT_KEYS}
    _apply(invocation, overrides, "event")
    return invocation


def _json_object(text: Any, key: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        raise ConfigError(key, "is not valid JSON; expected e.g. {\"mode\": \"digest\"}") from None
    if not isinstance(data, dict):
        raise ConfigError(key, "expected a JSON object such as {\"mode\": \"digest\"}")
    return data


def _apply(invocation: Invocation, overrides: Mapping[str, Any], where: str) -> None:
    import difflib

    for key in overrides:
        if key not in OVERRIDE_KEYS:
            hint = difflib.get_close_matches(key, OVERRIDE_KEYS, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else f"use {', '.join(OVERRIDE_KEYS)}"
            raise ConfigError(f"{where}.{key}", f"unknown override; {fix}")
    modes = overrides.get("modes", overrides.get("mode"))
    if modes is not None:
        modes = [modes] if isinstance(modes, str) else modes
        if not isinstance(modes, list) or not all(m in ("digest", "alert") for m in modes):
            raise ConfigError(f"{where}.mode", 'expected "digest" or "alert" (or a list)')
        invocation.modes = modes
    jobs = overrides.get("jobs")
    if jobs is not None:
        if not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
            raise ConfigError(f"{where}.jobs", "expected a list of job ids")
        invocation.job_ids = jobs
    for flag in ("force", "dry_run"):
        if flag in overrides:
            if not isinstance(overrides[flag], bool):
                raise ConfigError(f"{where}.{flag}", "expected true or false")
            setattr(invocation, flag, overrides[flag])


class FunctionEnvironment(Mapping[str, str]):
    """The process environment, falling back to the function's user data.

    FunctionGraph hands a function's environment variables ("user data") to the code through
    the context: plain ones also reach os.environ, encrypted ones only `getUserData(key)` and
    RUNTIME_USERDATA (a JSON object of all of them, decrypted) answer. The environment wins
    where both have a name. Every value that comes from user data, other than the
    DRS_REPORT_* settings themselves, joins the redaction list: those are what `${NAME}`
    references, passwords and webhook keys among them.
    """

    def __init__(self, context: Any, base: Mapping[str, str] | None = None) -> None:
        self._context = context
        self._base = dict(os.environ if base is None else base)
        self._user_data: dict[str, str] = {}
        from drs_report.config import _SECTION_KEYS  # every DRS_REPORT_<SECTION>_<KEY>

        self._settings = {environment.CONFIG_PATH, environment.LOG_LEVEL}
        self._settings.update(
            f"{environment.SETTING_PREFIX}{section.upper()}_{key.upper()}"
            for section, keys in _SECTION_KEYS.items() if section != "job" for key in keys)
        everything = self._base.get(environment.USER_DATA)
        if everything:
            logs.add_secrets([everything])  # decrypted secrets inside: never in a log
            try:
                parsed = json.loads(everything)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                for name, value in parsed.items():
                    if isinstance(name, str) and isinstance(value, str) and value:
                        self._remember(name, value)
        probe = [environment.AK, environment.SK, environment.SECURITY_TOKEN,
                 environment.PROJECT_ID, *sorted(self._settings)]
        for name in probe:
            if name not in self._base and name not in self._user_data:
                value = self._ask(name)
                if value:
                    self._remember(name, value)

    def _remember(self, name: str, value: str) -> None:
        self._user_data[name] = value
        if name not in self._settings:
            logs.add_secrets([value])

    def _ask(self, name: str) -> str | None:
        getter = getattr(self._context, "getUserData", None)
        if getter is None:
            return None
        try:
            value = getter(name)
        except Exception:  # some runtimes raise for unknown keys instead of returning ""
            return None
        return str(value) if value else None

    def __getitem__(self, name: str) -> str:
        if name in self._base:
            return self._base[name]
        if name in self._user_data:
            return self._user_data[name]
        value = self._ask(name)
        if value is None:
            raise KeyError(name)
        self._remember(name, value)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from (k for k in self._user_data if k not in self._base)

    def __len__(self) -> int:
        return len(set(self._base) | set(self._user_data))




class ContextLogHandler(logging.Handler):
    """Python logging -> FunctionGraph's logger.

    The runtime's logger stamps each line with the time, the request id and the level, so
    our lines carry only the logger's name and the message.
    """

    def __init__(self, context: Any) -> None:
        super().__init__()
        self._logger = context.getLogger()
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.levelno >= logging.ERROR:
                method = getattr(self._logger, "error", None)
            elif record.levelno >= logging.WARNING:
                method = getattr(self._logger, "warning", None) or getattr(
                    self._logger, "warn", None)
            elif record.levelno >= logging.INFO:
                method = getattr(self._logger, "info", None)
            else:
                method = getattr(self._logger, "debug", None)
            (method or print)(line)
        except Exception:
            self.handleError(record)


def _setup_logging(context: Any, request_id: str, level: str) -> logging.Handler:
    handler: logging.Handler
    if context is not None and hasattr(context, "getLogger"):
        handler = ContextLogHandler(context)
    else:
        import sys

        # No runtime logger to stamp the lines: say it ourselves.
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s {request_id} %(levelname)s %(name)s: %(message)s"))
    logs.install_function_handler(handler, level)
    return handler


def handle(event: Any, context: Any, *, code_dir: Path | None = None) -> dict[str, Any]:
    started = time.monotonic()
    request_id = ""
    if context is not None and hasattr(context, "getRequestID"):
        request_id = str(context.getRequestID() or "")
    environ = FunctionEnvironment(context)
    _setup_logging(context, request_id, environ.get(environment.LOG_LEVEL, "INFO"))
    from drs_report.web.apig import is_apig_event

    if is_apig_event(event):  # an APIG trigger: the HTTP side answers, no run happens
        from drs_report.web.apig import handle_apig

        return handle_apig(event, context, environ, code_dir=code_dir)
    summary: dict[str, Any]
    try:
        summary = _run(event, context, environ, code_dir, started)
    except StoreBusy as e:
        log.warning("%s", e)
        summary = {"status": "busy", "error": str(e)}
    except ConfigError as e:
        log.error("configuration error: %s", e)
        summary = {"status": "config_error", "error": str(e)}
    except DrsReportError as e:
        log.error("run failed: %s", e)
        summary = {"status": "error", "error": str(e)}
    except Exception as e:  # a bug: report it in one line; details at DEBUG
        log.debug("unexpected error", exc_info=True)
        log.error("internal error: %s", type(e).__name__)
        summary = {"status": "error", "error": f"internal error: {type(e).__name__}: {e}"}
    summary["request_id"] = request_id
    summary["duration_seconds"] = round(time.monotonic() - started, 3)
    redacted: dict[str, Any] = _redacted(summary)
    log.info("%s", summary_line(redacted))
    return redacted


def summary_line(summary: Mapping[str, Any]) -> str:
    """The invocation in one log line: status, counts, deliveries, sync time, duration."""
    parts = [f"status={summary.get('status')}"]
    if summary.get("run_id") is not None:
        parts.append(f"run={summary['run_id']}")
    counts = summary.get("counts")
    if isinstance(counts, dict):
        parts.append(f"jobs={summary.get('jobs', 0)}")
        parts.append("counts=" + ",".join(f"{k}:{v}" for k, v in counts.items()))
    deliveries = summary.get("deliveries")
    if isinstance(deliveries, list):
        tally: dict[str, int] = {}
        for d in deliveries:
            tally[str(d.get("status"))] = tally.get(str(d.get("status")), 0) + 1
        parts.append("deliveries=" + (",".join(f"{k}:{v}" for k, v in tally.items()) or "0"))
    readiness = summary.get("readiness")
    if isinstance(readiness, dict) and isinstance(readiness.get("counts"), dict):
        parts.append("readiness=" + ",".join(f"{k}:{v}"
                                             for k, v in readiness["counts"].items()))
    sync = summary.get("sync")
    if isinstance(sync, dict):
        seconds = (sync.get("fetch_seconds") or 0) + (sync.get("write_back_seconds") or 0)
        parts.append(f"sync={seconds:.2f}s ({sync.get('fetched')}"
                     f"{', merged' if sync.get('merged') else ''})")
    if summary.get("partial"):
        parts.append("partial")
    parts.append(f"duration={summary.get('duration_seconds')}s")
    if summary.get("error"):
        parts.append(f"error={summary['error']}")
    return "summary: " + " ".join(parts)


def _run(event: Any, context: Any, environ: FunctionEnvironment, code_dir: Path | None,
         started: float) -> dict[str, Any]:
    from drs_report.config import load_settings
    from drs_report.pipeline import run_cycle

    invocation = parse_event(event)
    path_text = environ.get(environment.CONFIG_PATH)
    config_path: Path | None
    if path_text:
        named = Path(path_text)
        config_path = code_dir / named if not named.is_absolute() and code_dir else named
    else:
        default = (code_dir or Path.cwd()) / "config.toml"
        config_path = default if default.is_file() else None
    settings = load_settings(config_path, environ)
    # The agency's temporary keys sign the requests of every target without keys of its own.
    credentials = (agency_credentials(context) if context is not None else None) or \
        credentials_from_environment(environ) or settings.without_shared_keys()
    if credentials is None:
        raise ConfigError(environment.AK, "no credentials: give the function an agency with "
                                          "DRS read access, or set HUAWEICLOUD_SDK_AK/SK")
    deadline = None
    remaining = getattr(context, "getRemainingTimeInMilliSeconds", None)
    if remaining is not None:
        deadline = started + float(remaining()) / 1000.0
    log.info("%s invocation%s", invocation.trigger,
             f" by {invocation.trigger_name}" if invocation.trigger_name else "")
    result = run_cycle(settings, credentials, trigger=invocation.trigger, deadline=deadline,
                       force=invocation.force, dry_run=invocation.dry_run,
                       job_ids=invocation.job_ids, modes=invocation.modes)
    summary = result.summary()
    summary["status"] = result.status  # ok, delivery_failed or nothing_read
    return summary


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return logs.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value
