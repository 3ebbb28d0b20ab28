"""Any other service, by Apprise URL (optional extra: pip install 'drs-report[apprise]')."""

from __future__ import annotations

from typing import Any

from drs_report.channels.base import Channel, PermanentError, TransientError, reveal
from drs_report.message import Message
from drs_report.render import render_chat, render_subject


class AppriseChannel(Channel):
    def describe_destination(self) -> str:
        schemes = sorted({reveal(u).split("://", 1)[0] for u in self.options["urls"]})
        return f"apprise ({', '.join(schemes)})"

    def payload_bytes(self, message: Message) -> bytes:
        return render_chat(message.report, dialect="markdown",
                           max_bytes=int(self.options["max_bytes"]), changes=message.changes,
                           language=message.language, settings=self.settings,
                           run_id=message.run_id).encode()

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        """Apprise makes its own requests, on threads of its own and under per-read
        timeouts only, so wire.py's deadline cannot reach its sockets. The attempt still
        ends by its deadline: Apprise runs on a thread of ours, and past the deadline the
        attempt gives up waiting (possibly delivered, so not retried at once)."""
        import threading
        import time

        import apprise

        until = self.attempt_deadline(deadline)
        notifier = apprise.Apprise()
        for url in self.options["urls"]:
            if not notifier.add(reveal(url)):
                raise PermanentError("Apprise did not accept one of the configured URLs")
        title = render_subject(message.report, language=message.language)
        body = self.payload_bytes(message).decode()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def notify() -> None:
            try:
                outcome["ok"] = bool(notifier.notify(
                    title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN))
            except BaseException as e:  # handed to the attempt below
                outcome["error"] = e
            finally:
                done.set()

        threading.Thread(target=notify, name="drs-apprise", daemon=True).start()
        if not done.wait(max(until - time.monotonic(), 0.0)):
            raise TransientError(f"Apprise did not finish within {self.timeout:g}s (the "
                                 "attempt's deadline); it may still deliver the message",
                                 handed_over=True)
        if "error" in outcome:
            raise outcome["error"]
        if not outcome["ok"]:
            # Apprise does not tell transient from permanent; let the next attempt decide.
            raise TransientError("Apprise reported a failed notification")
