"""Any other service, by Apprise URL (optional extra: pip install 'drs-report[apprise]')."""

from __future__ import annotations

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
        # Apprise makes its own requests: its own timeouts bound them, not `deadline`.
        import apprise

        notifier = apprise.Apprise()
        for url in self.options["urls"]:
            if not notifier.add(reveal(url)):
                raise PermanentError("Apprise did not accept one of the configured URLs")
        ok = notifier.notify(title=render_subject(message.report, language=message.language),
                             body=self.payload_bytes(message).decode(),
                             body_format=apprise.NotifyFormat.MARKDOWN)
        if not ok:
            # Apprise does not tell transient from permanent; let the next attempt decide.
            raise TransientError("Apprise reported a failed notification")
