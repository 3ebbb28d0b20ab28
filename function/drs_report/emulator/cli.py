"""`drs-report emulator`: the DRS emulator as a server, until interrupted.

At start it prints what a client needs and nothing it must guess: the URL, the project id,
the access key it accepts (the secret key only when it is the built-in demo key, which opens
nothing but this emulator; a real one is masked) and the job ids of its scenario.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, TextIO

from drs_report import environment
from drs_report.emulator import DEMO_AK, DEMO_PROJECT_ID, DEMO_SK, Emulator
from drs_report.emulator.scenario import Scenario, load_scenario
from drs_report.errors import ConfigError

MAX_LISTED_JOBS = 20


def parse_start(text: str) -> datetime:
    """'2026-11-21T08:00:00Z' (or any ISO 8601 time with a zone) -> an aware datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ConfigError("--start", f"{text!r} is not a time like 2026-11-21T08:00:00Z "
                                     "(ISO 8601 with a zone)")
    if value > datetime.now(timezone.utc):
        raise ConfigError("--start", f"{text} is in the future; the scenario's minute 0 must "
                                     "be now or earlier")
    return value


def serve(*, host: str, port: int, ak: str | None, sk: str | None, project_id: str | None,
          scenario: Path | None, start: datetime | None = None,
          out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not 0 <= port <= 65535:
        raise ConfigError("--port", f"{port} is not a TCP port; use 1-65535 (0 picks a free one)")
    elapsed = 0.0 if start is None else (datetime.now(timezone.utc) - start).total_seconds()
    try:
        fleet = load_scenario(scenario)
    except OSError as e:
        raise ConfigError("--scenario", f"cannot read {scenario}: {e.strerror or e}; "
                          "give a scenario TOML file, or leave it out for the demo fleet"
                          ) from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        # TOML syntax errors are ValueErrors; wrong keys or shapes surface as the others.
        raise ConfigError("--scenario", f"{scenario} is not a valid scenario: {e}; "
                          "see scenarios/demo.toml in the package for the format") from None
    key_source = "--ak/--sk" if ak or sk else None
    ak = ak or os.environ.get(environment.AK) or None
    sk = sk or os.environ.get(environment.SK) or None
    if key_source is None and (ak or sk):
        key_source = f"${environment.AK}/${environment.SK}"
    if (ak, sk) == (DEMO_AK, DEMO_SK):
        key_source = None  # the built-in demo key, however given: nothing to hide
    if (ak is None) != (sk is None):
        missing = "--sk" if sk is None else "--ak"
        raise ConfigError(missing, "give the access key and the secret key together (--ak "
                                   f"and --sk, or ${environment.AK} and ${environment.SK}), "
                                   "or neither for the built-in demo key")
    token = os.environ.get(environment.SECURITY_TOKEN) or None
    emulator = Emulator(ak=ak or DEMO_AK, sk=sk or DEMO_SK,
                        project_id=project_id or DEMO_PROJECT_ID, security_token=token,
                        scenario=fleet, host=host, port=port, start=start, elapsed=elapsed)
    return _serve_until_stopped(
        emulator, host=host, port=port, out=out,
        describe=lambda: describe(emulator, fleet, scenario=scenario, key_source=key_source,
                                  token=token is not None, out=out))


def serve_obs(*, host: str, port: int, ak: str | None, sk: str | None, buckets: list[str],
              out: TextIO | None = None) -> int:
    """`drs-report emulator --obs`: the OBS emulator, path-style, until interrupted."""
    from drs_report.emulator.obs import ObsEmulator

    out = out or sys.stdout
    emulator = ObsEmulator(ak=ak or os.environ.get(environment.AK) or DEMO_AK,
                           sk=sk or os.environ.get(environment.SK) or DEMO_SK,
                           security_token=os.environ.get(environment.SECURITY_TOKEN) or None,
                           buckets=buckets, host=host, port=port)
    return _serve_until_stopped(
        emulator, host=host, port=port, out=out,
        describe=lambda: print(f"buckets: {', '.join(buckets)}; serving; Ctrl-C stops",
                               file=out, flush=True))


class _Server(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> object: ...


def _serve_until_stopped(server: _Server, *, host: str, port: int, out: TextIO,
                         describe: Callable[[], None]) -> int:
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.start()
    except (OSError, OverflowError) as e:
        reason = getattr(e, "strerror", None) or e
        raise ConfigError("--port", f"cannot listen on {host}:{port}: {reason}; "
                          "choose another --port (0 picks a free one) or --host") from None
    try:
        print(f"listening on {server.url}", file=out, flush=True)
        describe()
        stop.wait()
    finally:
        server.stop()
    print("stopped", file=sys.stderr)
    return 0


def describe(emulator: Emulator, fleet: Scenario, *, scenario: Path | None,
             key_source: str | None, token: bool, out: TextIO) -> None:
    """What the emulator accepts, as lines a client can copy."""
    print(f"project id: {emulator.project_id}", file=out)
    ak = next(iter(emulator.state.keys))
    if key_source is None:
        print("accepts the built-in demo key (it opens nothing but this emulator):", file=out)
        print(f"  export {environment.AK}={ak}", file=out)
        print(f"  export {environment.SK}={emulator.state.keys[ak]}", file=out)
    else:
        print(f"accepts access key {ak} with the secret key from {key_source} "
              "(not shown)", file=out)
    if token:
        print(f"and requires the security token from ${environment.SECURITY_TOKEN} "
              "(not shown)", file=out)
    source = f"{scenario}" if scenario is not None else "the built-in demo fleet"
    clock = f", clock at minute {emulator.elapsed / 60:.0f}" if emulator.elapsed >= 60 else ""
    print(f"scenario: {source}, {len(fleet.jobs)} jobs{clock}; job ids:", file=out)
    for job in fleet.jobs[:MAX_LISTED_JOBS]:
        comparisons = "".join(f"\n    comparison {c.id}" for c in job.comparisons)
        print(f"  {job.id}  {job.name}{comparisons}", file=out)
    if len(fleet.jobs) > MAX_LISTED_JOBS:
        print(f"  and {len(fleet.jobs) - MAX_LISTED_JOBS} more "
              f"(GET {emulator.url}/_emulator/state lists them all)", file=out)
    print("serving; Ctrl-C stops", file=out)
    out.flush()
