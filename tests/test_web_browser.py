"""Headless Chromium reads the archive like a person would, through a signed link.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: no port,
no extra library). Every request the page makes is recorded from the Network domain: none
may leave the server; every console message, exception and CSP report is recorded too:
there must be none. A screenshot of each page is saved in the test's directory.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.web_fixtures import WAREHOUSE, Site


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("DRS_REPORT_CI"):
            pytest.fail("CI must have Chromium (Debian package 'chromium')")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return browser


class DevTools:
    """The DevTools protocol over Chromium's pipe: JSON messages ended by a NUL byte."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # Chromium reads commands on fd 3 and writes answers on fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-default-apps",
             "--disable-quic", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        data: dict[str, Any] = json.loads(message)
        return data

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            data = self._read()
            if data.get("id") == self._next:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            self.events.append(data)

    def wait_for(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            data = self._read()
            if data.get("method") == method:
                return data
            self.events.append(data)


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_the_archive_in_headless_chromium(site: Site, tmp_path: Path) -> None:
    from drs_report.web.auth import link_for

    browser = _chromium()
    tools = DevTools(browser, tmp_path / "profile")
    try:
        target = tools.send("Target.createTarget", url="about:blank")["targetId"]
        session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            tools.send(f"{domain}.enable", session)
        for name, path, marker in (("reports", "/reports", "#runs"),
                                   ("latest", "/reports/latest", "#counts"),
                                   ("job", f"/jobs/{WAREHOUSE}", "svg.chart")):
            link = link_for(site.settings.web, path)
            assert link is not None
            url = site.url + link.removeprefix(site.settings.web.base_url or "")
            tools.events.clear()
            tools.send("Page.navigate", session, url=url)
            tools.wait_for("Page.loadEventFired")
            found = tools.send("Runtime.evaluate", session, returnByValue=True,
                               expression=f"document.querySelectorAll({marker!r}).length")
            assert found["result"]["value"] >= 1, (name, marker)
            if name == "job":
                paths = tools.send("Runtime.evaluate", session, returnByValue=True,
                                   expression="document.querySelectorAll('svg path').length")
                assert paths["result"]["value"] == 2
            shot = tools.send("Page.captureScreenshot", session, format="png")
            picture = tmp_path / f"{name}.png"
            picture.write_bytes(base64.b64decode(shot["data"]))
            print(f"screenshot of {path}: {picture}")
            requested = [e["params"]["request"]["url"] for e in tools.events
                         if e.get("method") == "Network.requestWillBeSent"]
            assert requested and requested[0].startswith(site.url + path)
            leaving = [u for u in requested if not (u.startswith(site.url) or
                                                    u.startswith("data:"))]
            assert leaving == [], leaving
            complaints = [e for e in tools.events if e.get("method") in (
                "Runtime.consoleAPICalled", "Runtime.exceptionThrown")
                or (e.get("method") == "Log.entryAdded"
                    and e["params"]["entry"]["level"] in ("error", "warning"))]
            assert complaints == [], complaints
            statuses = [e["params"]["response"]["status"] for e in tools.events
                        if e.get("method") == "Network.responseReceived"
                        and e["params"]["response"]["url"].startswith(site.url)]
            assert statuses and all(s == 200 for s in statuses), statuses
    finally:
        tools.close()
