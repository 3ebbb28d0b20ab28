"""An in-process DRS emulator: the documented API on loopback, for tests, benchmarks and demo.

    with Emulator(ak=AK, sk=SK, project_id=PID) as emu:
        emu.url            # http://127.0.0.1:PORT
        emu.advance(600)   # ten simulated minutes later
        emu.set_faults(Faults(latency_ms=50, rate_limit=100))

The clock: scenario time starts at `elapsed` seconds (default 0) and runs at `speed` times
real time (0 stops it: only advance() moves it); `start` is the wall-clock time of the
scenario's minute 0 (default: `elapsed` seconds ago), which the service's own timestamps
(`process_time`) count from.
"""

from __future__ import annotations

import ssl
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType

from drs_report.emulator.scenario import Scenario, generated_fleet, load_scenario
from drs_report.emulator.server import EmulatorHTTPServer, EmulatorState, Faults

__all__ = ["DEMO_AK", "DEMO_PROJECT_ID", "DEMO_SK", "Emulator", "Faults", "Scenario",
           "generated_fleet", "load_scenario"]

# Credentials the demo uses on both sides; they open nothing but the emulator, so they are
# printed in full (`drs-report emulator`, `drs-report demo`) where a real key would be masked.
DEMO_AK = "DEMOAKDRSREPORTEMULATOR0"
DEMO_SK = "demo-sk-drs-report-emulator-not-a-real-secret"
DEMO_PROJECT_ID = "5237e10fe9aa4ad5b16b6a5245248314"


class Emulator:
    def __init__(
        self,
        *,
        ak: str,
        sk: str,
        project_id: str,
        security_token: str | None = None,
        scenario: Scenario | Path | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        faults: Faults | None = None,
        ssl_context: ssl.SSLContext | None = None,
        start: datetime | None = None,
        elapsed: float = 0.0,
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.state = EmulatorState(self.scenario, keys={ak: sk}, project_id=project_id,
                                   security_token=security_token, speed=speed, faults=faults,
                                   start=start, elapsed=elapsed)
        self._address = (host, port)
        self._ssl_context = ssl_context  # serve HTTPS, for the TLS verification tests
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    @property
    def project_id(self) -> str:
        return self.state.project_id

    @property
    def requests_served(self) -> int:
        return self.state.requests_served

    @property
    def statuses(self) -> dict[int, int]:
        """How many answers of each HTTP status were given (0: reset or left hanging)."""
        return dict(self.state.statuses)

    def start(self) -> Emulator:
        self._server = EmulatorHTTPServer(self._address, self.state)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(self._server.socket,
                                                                server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="drs-emulator")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def advance(self, seconds: float) -> None:
        """Move the scenario's clock forward without sleeping."""
        self.state.advance(seconds)

    @property
    def elapsed(self) -> float:
        """Seconds of scenario time since its minute 0."""
        return self.state.elapsed()

    def now(self) -> datetime:
        """The scenario's wall-clock time: its minute 0 plus the elapsed scenario time."""
        origin = datetime.fromtimestamp(self.state.epoch_ms / 1000, tz=timezone.utc)
        return origin + timedelta(seconds=self.state.elapsed())

    def set_faults(self, faults: Faults) -> None:
        self.state.set_faults(faults)

    def jobs_config(self) -> list[dict[str, object]]:
        """The scenario's jobs as `[[jobs]]` tables (id, name, compare_jobs)."""
        return [{"id": j.id, "name": j.name, "compare_jobs": [c.id for c in j.comparisons]}
                for j in self.scenario.jobs]
