"""Huawei Cloud SMN: publish to a topic, signed with the same credentials as the DRS calls.

POST {endpoint}/v2/{project_id}/notifications/topics/{topic_urn}/publish with `subject`
and `message_structure`: a JSON string with `default` and per-protocol entries, so email
subscribers get the text report and SMS subscribers one line. SMN also delivers to chat bots,
so the text report it sends escapes API text for chats (render's "fanout" medium).

SMN's limits (support.huaweicloud.com/productdesc-smn/smn_01_0004.html, "Notes and
Constraints"): a subject of at most 512 bytes; a text or JSON message of at most 256 KB; an
SMS of at most 490 characters, which may not contain "[]" or "【】". The message structure
is measured whole; a digest whose text report does not fit goes as the folded Markdown.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from drs_report.answers import MalformedAnswer, decode_json
from drs_report.channels.base import Channel, PermanentError, TransientError
from drs_report.message import Message
from drs_report.render import render_chat, render_subject, render_text
from drs_report.signing import RequestSigner

SUBJECT_MAX_BYTES = 512
MESSAGE_MAX_BYTES = 256 * 1024
SMS_MAX_CHARS = 490
# SMN refuses SMS text holding square brackets ([] and the full-width 【】); parentheses
# read the same.
_SMS_BRACKETS = str.maketrans({"[": "(", "]": ")", "\u3010": "\uff08", "\u3011": "\uff09"})


class SmnChannel(Channel):
    @property
    def endpoint(self) -> str:
        if self.options.get("endpoint"):
            return str(self.options["endpoint"]).rstrip("/")
        region = self.options.get("region") or self.settings.drs.region
        return f"https://smn.{region}.myhuaweicloud.com"

    @property
    def url(self) -> str:
        project = self.options.get("project_id") or self.settings.drs.project_id
        topic = quote(str(self.options["topic_urn"]), safe=":")
        return f"{self.endpoint}/v2/{project}/notifications/topics/{topic}/publish"

    def describe_destination(self) -> str:
        return f"smn topic {self.options['topic_urn']}"

    def payload_bytes(self, message: Message) -> bytes:
        subject = render_subject(message.report, language=message.language,
                                 max_bytes=SUBJECT_MAX_BYTES)
        sms = subject.translate(_SMS_BRACKETS)[:SMS_MAX_CHARS]

        def structure(text: str) -> str:
            return json.dumps({"default": text, "email": text, "sms": sms, "http": text,
                               "https": text}, ensure_ascii=False)

        def size(text: str) -> int:
            return len(structure(text).encode("utf-8"))

        # SMN fans out to mailboxes and to chat bots (DingTalk, Lark, WeCom): the text report
        # with API text made inert for chats too (Lark reads <at user_id="all"> in text).
        text = render_text(message.report, settings=self.settings, language=message.language,
                           run_id=message.run_id, medium="fanout") \
            if message.kind == "digest" else ""
        if not text or size(text) > MESSAGE_MAX_BYTES:
            text = render_chat(message.report, dialect="fanout",
                               max_bytes=MESSAGE_MAX_BYTES, measure=size,
                               changes=message.changes, language=message.language,
                               settings=self.settings, run_id=message.run_id)
        return json.dumps({"subject": subject, "message_structure": structure(text)},
                          ensure_ascii=False).encode()

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        if self.credentials is None:
            raise PermanentError("SMN needs credentials (HUAWEICLOUD_SDK_AK/SK or the "
                                 "function's agency)")
        body = self.payload_bytes(message)
        project = self.options.get("project_id") or self.settings.drs.project_id
        signer = RequestSigner(self.credentials, str(project))
        headers = signer.sign("POST", self.url,
                              headers={"Content-Type": "application/json;charset=UTF-8",
                                       **self.idempotency_headers(message)},
                              body=body)
        _, content = self.post(self.url, body, headers=headers, deadline=deadline)
        try:
            answer = decode_json(content)
        except MalformedAnswer as e:
            raise TransientError(f"SMN answered a body that is not usable JSON ({e})") from None
        if not isinstance(answer, dict) or "message_id" not in answer:
            shown = json.dumps(answer, ensure_ascii=False)[:200]
            raise PermanentError(f"SMN did not confirm the publish: {shown}")
