"""`drs-report history`: the stored readings of one job, newest last.

The table goes to a terminal: every value from the API (states, error messages, log
points) has its escape sequences and control characters removed (render.terminal_inert),
so a stored `transfer_status` cannot recolour the screen, retitle the window or write the
clipboard (OSC 52). The JSON's C1 controls are written as \\u escapes for the same reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from drs_report.config import Settings
from drs_report.errors import ConfigError
from drs_report.pipeline import EXIT_OK, sqlite_file
from drs_report.render import json_text, terminal_inert

_COLUMNS = [
    ("taken_at", 20), ("transfer_status", 24), ("progress", 8), ("incre_trans_delay", 9),
    ("remaining_time", 9), ("error", 30),
]


def show_history(settings: Settings, job_id: str, *, since_seconds: float,
                 output_format: str, out: TextIO, target: str | None = None) -> int:
    from drs_report.store import Store

    if "/" in job_id and target is None:
        target, job_id = job_id.split("/", 1)  # TARGET/JOB_ID
    project_id = _target_project(settings, target) if target is not None else None

    path = sqlite_file(settings.store.url)
    if path is not None and not path.is_file():
        # Reading must not create: an empty new file would hide a wrong path.
        raise ConfigError("store.url", f"no history at {path} (the file does not exist); "
                                       "check [store] url, or run `drs-report run` first")
    store = Store.open(settings.store.url)
    try:
        store.upgrade(project_id=settings.single_project())
        since = datetime.now(timezone.utc) - timedelta(seconds=since_seconds)
        if project_id is None and len(settings.fleet()) > 1:
            project_id = _only_project(settings, job_id, store.projects_of(job_id))
        readings = store.readings(job_id, since, project_id)
    finally:
        store.close()
    if output_format == "json":
        out.write(json_text(readings) + "\n")
        return EXIT_OK
    if not readings:
        out.write(f"no readings of {terminal_inert(job_id)} since "
                  f"{since:%Y-%m-%d %H:%M} UTC\n")
        return EXIT_OK
    out.write("  ".join(name.ljust(width) for name, width in _COLUMNS).rstrip() + "\n")
    for reading in readings:
        out.write("  ".join(_cell(reading, name).ljust(width)[:max(width, 1) + 40]
                            for name, width in _COLUMNS).rstrip() + "\n")
        for comp in reading["comparisons"]:
            out.write(f"    comparison {terminal_inert(comp['compare_job_id'])}: "
                      f"{terminal_inert(_compare_cell(comp))}\n")
    return EXIT_OK


def _target_project(settings: Settings, name: str) -> str:
    """--target NAME (or its project id): the target's project."""
    for target in settings.fleet():
        if name in (target.name, target.project_id):
            return target.project_id
    names = ", ".join(t.name for t in settings.fleet())
    raise ConfigError("--target", f"{name!r} is not a configured target; the configuration "
                                  f"has {names}")


def _only_project(settings: Settings, job_id: str, stored: list[str]) -> str | None:
    """A bare job id is enough when one target has it; else say how to name the target."""
    projects = [p for p in stored if p]
    if len(projects) <= 1:
        return projects[0] if projects else None
    names = [t.name for t in settings.fleet() if t.project_id in projects] or projects
    raise ConfigError("--job", f"{job_id} has readings in several targets "
                               f"({', '.join(names)}); add --target NAME or write "
                               f"TARGET/{job_id}")


def _cell(reading: dict[str, Any], name: str) -> str:
    value = reading.get(name)
    if name == "taken_at":
        return str(value)[:19].replace("T", " ")
    if name == "error":
        error = reading.get("error")
        if error:
            return terminal_inert(f"{error['kind']}: {terminal_inert(error['message'])[:60]}")
        if reading.get("error_code"):
            return terminal_inert(f"{reading['error_code']}: "
                                  f"{terminal_inert(reading['error_msg'])[:60]}")
        return ""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return terminal_inert(value)


def _compare_cell(comp: dict[str, Any]) -> str:
    if comp.get("error"):
        return f"{comp['error']['kind']}: {terminal_inert(comp['error']['message'])[:200]}"
    parts = []
    full, incre = comp.get("full_info"), comp.get("incre_info")
    if full:
        parts.append(f"full {full.get('progress')}% recheck {full.get('recheck_entities')}")
    if incre:
        parts.append(f"incremental delay {incre.get('delay')} log point {incre.get('log_point')}"
                     f" recheck {incre.get('recheck_entities')}")
    return "; ".join(parts) or "-"
