"""`drs-report demo`: the whole cycle against the embedded emulator, no cloud account needed.

Writes a real configuration (DIR/config.toml) pointing at the emulator, runs the pipeline
twice (ten simulated minutes apart, so history and "what changed" have something to show)
and leaves the reports and the SQLite history in DIR.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from drs_report.pipeline import EXIT_OK


def demo_config(endpoint: str, project_id: str, jobs: list[dict[str, object]],
                obs_endpoint: str | None = None) -> str:
    lines = [
        "# Written by `drs-report demo`: a configuration watching the emulator's demo fleet.",
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
    lines += ["[store]", 'url = "sqlite:///history.db"']
    if obs_endpoint is not None:
        # The history kept in (emulated) OBS between runs, as in FunctionGraph.
        lines += ['sync = "obs://drs-report/demo/history.db"',
                  f'obs_endpoint = "{obs_endpoint}"']
    lines += ["", "[report]", 'output_dir = "."', ""]
    return "\n".join(lines)


def run_demo(out_dir: Path) -> int:
    from drs_report.config import load_settings
    from drs_report.emulator import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK, Emulator
    from drs_report.emulator.obs import ObsEmulator
    from drs_report.pipeline import run_cycle
    from drs_report.secrets import Credentials

    out_dir.mkdir(parents=True, exist_ok=True)
    credentials = Credentials.of(DEMO_AK, DEMO_SK)
    with Emulator(ak=DEMO_AK, sk=DEMO_SK, project_id=DEMO_PROJECT_ID) as emulator, \
            ObsEmulator(ak=DEMO_AK, sk=DEMO_SK, buckets=["drs-report"]) as obs:
        config_path = out_dir / "config.toml"
        config_path.write_text(demo_config(emulator.url, DEMO_PROJECT_ID,
                                           emulator.jobs_config(), obs_endpoint=obs.url),
                               encoding="utf-8")
        settings = load_settings(config_path, {})
        first = run_cycle(settings, credentials, trigger="demo")
        emulator.advance(600)
        result = run_cycle(settings, credentials, trigger="demo",
                           now=first.report.generated_at + timedelta(minutes=10))
    counts = ", ".join(f"{n} {h.lower()}" for h, n in result.report.counts().items())
    sync = result.sync or {}
    print(f"demo: {len(result.report.jobs)} jobs ({counts}); readings kept in "
          f"{out_dir / 'history.db'}, synced with {sync.get('where')} in the OBS emulator "
          f"({sync.get('bytes', 0)} bytes, {sync.get('fetch_seconds', 0) or 0:.2f}s + "
          f"{sync.get('write_back_seconds', 0) or 0:.2f}s)")
    for fmt, path in result.outputs.items():
        print(f"{fmt}: {path.resolve()}")
    sys.stdout.flush()
    return EXIT_OK
