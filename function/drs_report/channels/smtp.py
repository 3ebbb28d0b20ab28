"""Email over SMTP: multipart/alternative (text first, HTML last), TLS, STARTTLS or plain.

A digest carries the HTML report (and, when the HTML was summarised to stay under mail
clients' clipping size, the full report as an attachment); an alert carries the alert text.
SMTP 4xx replies and connection problems are transient; 5xx and authentication failures
are permanent.

An attempt ends by its deadline whatever the relay does (a stalled greeting, a reply
dripping a byte at a time): its socket is under the watchdog of wire.py. The Message-ID is
derived from the delivery's idempotency key, so a copy sent again (after a relay that took
the message and then fell silent, or a run killed during DATA) is the same message to mail
clients and archives, which fold it.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from drs_report import logs, wire
from drs_report.channels.base import (
    Channel,
    PermanentError,
    TransientError,
    idempotency_id,
    reveal,
)
from drs_report.config import ChannelConfig
from drs_report.message import Message
from drs_report.render import render_chat, render_subject

log = logs.get_logger("channels.smtp")

_END_OF_DATA = b"\r\n.\r\n"
# An alert is the Markdown text alone. A digest's HTML part keeps to render.HTML_MAX_BYTES:
# Gmail shows "[Message clipped]" for HTML beyond about 102 KB (not a documented limit; the
# figure mail senders measure, e.g. spamresource.com, "What is Gmail clipping", 2022). Its
# text part and the attached full report cut every API string (render.TEXT_CHARS).
ALERT_MAX_BYTES = 64 * 1024


class _WatchedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose socket obeys the attempt's deadline, and which knows when the
    whole message has been written (the end-of-data line)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._connect(host, port, timeout)
        wire.attach(sock)
        return sock

    def _connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """As smtplib connects, but the relay's name is looked up within `timeout` too (a
        resolver retrying server after server is not bounded by any socket timeout); the
        name stays smtplib's host, for STARTTLS's certificate check."""
        try:
            addresses = wire.lookup_in_time(host, port, timeout) or [host]
        except wire.WireError as e:
            raise TransientError(str(e)) from None
        last: OSError | None = None
        for address in addresses:
            try:
                return socket.create_connection((address, port), timeout,
                                                self.source_address)
            except OSError as e:
                last = e
        assert last is not None
        raise last

    def send(self, s: Any) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(_END_OF_DATA):
            wire.handed_over()


class _WatchedSMTPSSL(_WatchedSMTP, smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The plain socket goes under the deadline before the TLS handshake, which a
        # stalling server can drag out too.
        raw = self._connect(host, port, timeout)
        wire.attach(raw)
        return self.context.wrap_socket(raw, server_hostname=self._host)  # type: ignore[attr-defined]


class SmtpChannel(Channel):
    def __init__(self, config: ChannelConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if self.options.get("username") and self.options.get("password") is not None:
            # AUTH PLAIN sends this; a relay quoting it back must not show it either.
            plain = f"\0{self.options['username']}\0{reveal(self.options['password'])}"
            logs.add_secrets([base64.b64encode(plain.encode()).decode()])
        if not self.options.get("verify_tls", True):
            log.warning("channel %s: TLS certificate verification is OFF (verify_tls = false)",
                        config.name)

    def describe_destination(self) -> str:
        to = ", ".join(reveal(a) for a in self.options["to"])
        return f"smtp://{self.options['host']}:{self.options['port']} to {to}"

    def build(self, message: Message) -> EmailMessage:
        report = message.report
        mail = EmailMessage()
        subject = render_subject(report, language=message.language)
        if message.kind == "alert":
            from drs_report.render import Words, readiness_subject

            subject = f"{Words(message.language, 'UTC')('alert.title')}: {subject}"
            cutover = readiness_subject(message.changes, message.language)
            if cutover:  # the news a migration team waits for goes first
                subject = f"{cutover} - {subject}"
        mail["Subject"] = subject
        mail["From"] = str(self.options["from"])
        mail["To"] = ", ".join(reveal(a) for a in self.options["to"])
        if self.options["cc"]:
            mail["Cc"] = ", ".join(reveal(a) for a in self.options["cc"])
        mail["Date"] = formatdate(usegmt=True)
        domain = str(self.options["from"]).rsplit("@", 1)[-1].strip("> ")
        key = message.idempotency_key
        mail["Message-ID"] = (f"<{idempotency_id(key)}.drs-report@{domain}>" if key
                              else make_msgid("drs-report", domain=domain))
        if message.kind == "alert":
            text = render_chat(report, dialect="markdown", max_bytes=ALERT_MAX_BYTES,
                               changes=message.changes, language=message.language,
                               settings=self.settings, run_id=message.run_id)
            mail.set_content(text)
            return mail
        mail.set_content(message.rendered.get("txt", ""))
        mail.add_alternative(message.rendered.get("html", ""), subtype="html")
        full = message.rendered.get("html_full")
        if full:
            mail.add_attachment(full.encode("utf-8"), maintype="text", subtype="html",
                                filename="drs-report.html")
        return mail

    def payload_bytes(self, message: Message) -> bytes:
        return self.build(message).as_bytes()

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.options.get("ca_file"))
        if not self.options.get("verify_tls", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        mail = self.build(message)
        host, port = str(self.options["host"]), int(self.options["port"])
        until = self.attempt_deadline(deadline)
        security = self.options["security"]
        recipients = [reveal(a) for a in [*self.options["to"], *self.options["cc"]]]
        smtp: smtplib.SMTP | None = None
        with wire.watching(until) as watch:
            try:
                timeout = max(0.05, until - time.monotonic())
                if security == "ssl":
                    smtp = _WatchedSMTPSSL(host, port, timeout=timeout,
                                           context=self._tls_context())
                else:
                    smtp = _WatchedSMTP(host, port, timeout=timeout)
                if security == "starttls":
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if self.options.get("username"):
                    smtp.login(str(self.options["username"]), reveal(self.options["password"]))
                refused = smtp.send_message(mail, to_addrs=recipients)
            except smtplib.SMTPAuthenticationError as e:
                raise PermanentError(f"SMTP authentication failed ({e.smtp_code}); check the "
                                     "username and password") from None
            except smtplib.SMTPResponseException as e:
                text = f"SMTP {e.smtp_code}: {_reply(e.smtp_error)}"
                if 400 <= e.smtp_code < 500:
                    raise TransientError(text) from None
                raise PermanentError(text) from None
            except smtplib.SMTPRecipientsRefused as e:
                raise PermanentError(f"all {len(e.recipients)} recipient(s) refused") from None
            except ssl.SSLCertVerificationError as e:
                raise PermanentError(f"TLS certificate of {host} not trusted: "
                                     f"{e.verify_message}; set ca_file, or verify_tls = false "
                                     "for a test relay") from None
            except (smtplib.SMTPException, OSError) as e:
                where = f"{host}:{port}"
                if watch.fired:
                    text = f"no complete answer from {where} within {self.timeout:g}s"
                else:
                    text = str(wire.classify(e, where, connect_timeout=timeout,
                                             read_timeout=timeout))
                    if isinstance(e, smtplib.SMTPException):
                        text += f" ({type(e).__name__}: {_reply(str(e))})"
                raise TransientError(text, handed_over=watch.handed_over) from None
            finally:
                if smtp is not None and not watch.fired:
                    _quit(smtp)
                if smtp is not None:
                    smtp.close()
        if refused:
            raise PermanentError(f"the server refused {len(refused)} recipient(s)")


def _quit(smtp: smtplib.SMTP) -> None:
    """QUIT politely; the message is sent or not by now, whatever the relay says to this."""
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.quit()


def _reply(value: Any) -> str:
    """A relay's words, one short line, secrets masked (relays quote what they were sent)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return logs.redact(" ".join(text.split()))[:200]
