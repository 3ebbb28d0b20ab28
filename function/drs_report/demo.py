"""`drs-report demo`: a day of readings against the embedded emulator, no cloud account.

The emulator's clock is simulated: the day starts 24 hours before now and the pipeline
reads the fleet every 30 minutes of it (49 readings, each stored at its simulated time),
so the report at the end has trends, an ETA from a real rate, a job stalled for hours, a
problem resolved and new ones since the reading before. The last reading is taken at the
present moment of the simulated day, never after the real one.

The last reading goes through the store kept in OBS, as in FunctionGraph: the day's history
is put in the OBS emulator, and that run takes the lease, fetches the file, writes it back.

DIR/config.toml is a real configuration (written by `demo_config`, the one place that
knows its contents); it keeps the history in DIR, so it works again with the DRS emulator
alone. The demo prints it and the two commands that use it again: an
emulator on the same port with the same scenario and clock, and `drs-report run`.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from drs_report import environment
from drs_report.errors import ConfigError
from drs_report.pipeline import EXIT_OK

DEMO_HOURS = 24
DEMO_STEP_MINUTES = 30
DEMO_PORT = 8080  # the emulator's default, so the printed command is the usual one
DEMO_BUCKET = "drs-report"
DEMO_OBJECT = "demo/history.db"
CONFIG_HEADER = "# Written by `drs-report demo`"
_DEMO_FILES = ("history.db", "history.db-wal", "history.db-shm", "config.toml")


def demo_config(endpoint: str, project_id: str, jobs: list[dict[str, object]]) -> str:
    """The demo's configuration: the emulator's fleet, history and reports in DIR."""
    lines = [
        f"{CONFIG_HEADER}: a configuration watching the emulator's demo fleet.",
        "[drs]",
        'region = "cn-north-4"',
        f'project_id = "{project_id}"',
        f'endpoint = "{endpoint}"',
        'language = "en-us"',
        "",
    ]
    for job in jobs:
        compare = ", ".join(f'"{c}"' for c in job["compare_jobs"])  # type: ignore[attr-defined]
        name = str(job["name"]).replace("\\", "\\\\").replace('"', '\\"')
        lines += ["[[jobs]]", f'id = "{job["id"]}"', f'name = "{name}"',
                  f"compare_jobs = [{compare}]", ""]
    lines += ["[store]", 'url = "sqlite:///history.db"', "", "[report]", 'output_dir = "."', ""]
    return "\n".join(lines)


def _prepare(out_dir: Path) -> None:
    """DIR must be a directory the demo may fill; a previous demo's day is started afresh."""
    from drs_report.config import check_output_dir

    check_output_dir(out_dir, "--out")
    config = out_dir / "config.toml"
    ours = config.is_file() and config.read_text(encoding="utf-8",
                                                 errors="replace").startswith(CONFIG_HEADER)
    if (out_dir / "history.db").exists() and not ours:
        raise ConfigError("--out", f"{out_dir} holds a history.db the demo did not write; "
                                   "choose an empty or new directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if ours:
            for name in _DEMO_FILES:
                (out_dir / name).unlink(missing_ok=True)
    except OSError as e:
        raise ConfigError("--out", f"cannot use {out_dir}: {e.strerror or e}") from None


def _synced_last_run(config_path: Path, settings: Any, credentials: Any, obs_endpoint: str,
                     *, now: datetime) -> Any:
    """The day's last run on the store kept in OBS: its history is put there first, as the
    previous instance would have left it."""
    from drs_report.config import load_settings
    from drs_report.obs.client import ObsClient
    from drs_report.pipeline import run_cycle

    working_copy = Path(settings.store.url[len("sqlite:///"):])
    client = ObsClient(obs_endpoint, credentials)
    try:
        client.put_file(DEMO_BUCKET, DEMO_OBJECT, working_copy)
    finally:
        client.close()
    synced = load_settings(config_path, {}, overrides={"store": {
        "sync": f"obs://{DEMO_BUCKET}/{DEMO_OBJECT}", "obs_endpoint": obs_endpoint}})
    return run_cycle(synced, credentials, trigger="demo", now=now)


def run_demo(out_dir: Path, *, port: int = DEMO_PORT, out: TextIO | None = None,
             now: datetime | None = None) -> int:
    from drs_report.config import load_settings
    from drs_report.emulator import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK, Emulator
    from drs_report.emulator.obs import ObsEmulator
    from drs_report.pipeline import run_cycle
    from drs_report.secrets import Credentials
    from drs_report.store import Store

    out = out or sys.stdout
    _prepare(out_dir)
    credentials = Credentials.of(DEMO_AK, DEMO_SK)
    step = timedelta(minutes=DEMO_STEP_MINUTES)
    steps = DEMO_HOURS * 60 // DEMO_STEP_MINUTES
    end = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    start = end - steps * step

    def emulator_on(chosen: int) -> Emulator:
        # speed=0: the scenario's clock moves only when the demo advances it.
        return Emulator(ak=DEMO_AK, sk=DEMO_SK, project_id=DEMO_PROJECT_ID, port=chosen,
                        speed=0.0, start=start).start()

    try:
        emulator = emulator_on(port)
    except OSError:  # the usual port is taken (an emulator already runs?): any free one
        emulator = emulator_on(0)
    try:
        config_path = out_dir / "config.toml"
        config_text = demo_config(emulator.url, DEMO_PROJECT_ID, emulator.jobs_config())
        config_path.write_text(config_text, encoding="utf-8")
        settings = load_settings(config_path, {})
        store = Store.open(settings.store.url)  # one engine for the day's first 48 runs
        try:
            for n in range(steps):
                if n:
                    emulator.advance(step.total_seconds())
                run_cycle(settings, credentials, trigger="demo", store=store,
                          now=start + n * step)
        finally:
            store.close()
        emulator.advance(step.total_seconds())
        with ObsEmulator(ak=DEMO_AK, sk=DEMO_SK, buckets=[DEMO_BUCKET]) as obs:
            result = _synced_last_run(config_path, settings, credentials, obs.url,
                                      now=start + steps * step)
        listening = emulator.url
    finally:
        emulator.stop()
    counts = ", ".join(f"{n} {h.lower()}" for h, n in result.report.counts().items())
    print(f"demo: {steps + 1} readings, one every {DEMO_STEP_MINUTES} minutes from "
          f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC (simulated); "
          f"{len(result.report.jobs)} jobs ({counts}); history in "
          f"{(out_dir / 'history.db').resolve()}", file=out)
    sync = result.sync or {}
    print(f"the last reading used the store kept in OBS (the OBS emulator): "
          f"{sync.get('bytes', 0)} bytes fetched in {sync.get('fetch_seconds') or 0:.2f}s "
          f"and written back in {sync.get('write_back_seconds') or 0:.2f}s under a lease",
          file=out)
    from drs_report.render import Words, text_inert

    line = Words("en-us", "UTC").readiness_line(result.report.readiness, text_inert)
    print(f"{line[0].lower()}{line[1:]}; `drs-report readiness --config "
          f"{(out_dir / 'config.toml').resolve()}` asks the same history", file=out)
    for fmt, path in result.outputs.items():
        print(f"{fmt}: {path.resolve()}", file=out)
    print(f"\nconfig: {config_path.resolve()}", file=out)
    for line in config_text.splitlines():
        print(f"  {line}", file=out)
    port_used = listening.rsplit(":", 1)[1]
    emulator_command = ["drs-report", "emulator", "--port", port_used,
                        "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "--ak", DEMO_AK, "--sk", DEMO_SK]
    run_command = [f"{environment.AK}={DEMO_AK}", f"{environment.SK}={DEMO_SK}",
                   "drs-report", "run", "--config", str(config_path.resolve())]
    print("\nto run it again: start the emulator with the same fleet where the day left off "
          "(the key is the emulator's built-in demo key, which opens nothing else),", file=out)
    print(f"  $ {shlex.join(emulator_command)}", file=out)
    print("then, in another terminal:", file=out)
    print(f"  $ {shlex.join(run_command)}", file=out)
    out.flush()
    return EXIT_OK
