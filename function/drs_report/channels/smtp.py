"""Email over SMTP: multipart/alternative (text first, HTML last), TLS, STARTTLS or plain.

A digest carries the HTML report (and, when the HTML was summarised to stay under mail
clients' clipping size, the full report as an attachment); an alert carries the alert text.
SMTP 4xx replies and connection problems are transient; 5xx and authentication failures
are permanent.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from drs_report import logs
from drs_report.channels.base import Channel, PermanentError, TransientError, reveal
from drs_report.config import ChannelConfig
from drs_report.message import Message
from drs_report.render import render_chat, render_subject

log = logs.get_logger("channels.smtp")


class SmtpChannel(Channel):
    def __init__(self, config: ChannelConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
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
            from drs_report.render import Words

            subject = f"{Words(message.language, 'UTC')('alert.title')}: {subject}"
        mail["Subject"] = subject
        mail["From"] = str(self.options["from"])
        mail["To"] = ", ".join(reveal(a) for a in self.options["to"])
        if self.options["cc"]:
            mail["Cc"] = ", ".join(reveal(a) for a in self.options["cc"])
        mail["Date"] = formatdate(usegmt=True)
        domain = str(self.options["from"]).rsplit("@", 1)[-1].strip("> ")
        mail["Message-ID"] = make_msgid("drs-report", domain=domain)
        if message.kind == "alert":
            text = render_chat(report, dialect="markdown", max_bytes=64 * 1024,
                               changes=message.changes, language=message.language,
                               settings=self.settings)
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

    def send(self, message: Message) -> None:
        mail = self.build(message)
        host, port = str(self.options["host"]), int(self.options["port"])
        timeout = float(self.options["timeout"])
        security = self.options["security"]
        recipients = [reveal(a) for a in [*self.options["to"], *self.options["cc"]]]
        try:
            smtp: smtplib.SMTP
            if security == "ssl":
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            with smtp:
                if security == "starttls":
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if self.options.get("username"):
                    smtp.login(str(self.options["username"]), reveal(self.options["password"]))
                refused = smtp.send_message(mail, to_addrs=recipients)
            if refused:
                raise PermanentError(f"the server refused {len(refused)} recipient(s)")
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
            raise PermanentError(f"TLS certificate of {host} not trusted: {e.verify_message}; "
                                 "set ca_file, or verify_tls = false for a test relay") from None
        except (smtplib.SMTPException, OSError) as e:
            raise TransientError(f"cannot talk to {host}:{port}: {type(e).__name__}: "
                                 f"{_reply(str(e))}") from None


def _reply(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:200]
