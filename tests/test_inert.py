"""Every API value escaped for the medium it goes to, through whole runs.

A hostile emulator scenario answers `transfer_status` values no catalogue knows (Slack's
`<!channel>`, Feishu's `<at user_id="all">`, `@all`, live links, CR/LF-forged lines,
terminal escape sequences) and error messages full of the same. Two real cycles deliver
digests and alerts to the vendor stand-ins and an SMTP relay, write the report files, and
leave a history that the chat-ops commands and `drs-report history` read. Every message,
file and answer is checked for markup that would still act, and every terminal line for
control sequences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from drs_report.emulator.scenario import scenario_from_dict
from drs_report.pipeline import run_cycle
from tests.fixtures.emulator import canary_credentials, make_emulator, make_settings
from tests.fixtures.hostile import HostileHTTP, HostileSMTP, answer
from tests.fixtures.receivers import DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_SECRET, Receiver
from tests.test_end_to_end import CREDENTIALS, cli, write_config
from tests.test_folding import text_of

# What a terminal would act on: OSC 52 (write the clipboard), clear screen, an 8-bit CSI.
TERMINAL = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31m"
FORGED = "\r\n[CRITICAL] FORGED\n- **CRITICAL** FORGED"


def job_id(n: int) -> str:
    return f"{n:08d}-7777-4aaa-8bbb-00000000jb{n:02d}"


# transfer_status values the catalogue does not know (at most 64 characters, as stored).
STATES = {
    1: "<!channel>",
    2: '<at user_id="all"></at>',
    3: "@all <@U123>",
    4: "[x](http://evil.example) www.evil.example",
    5: "OK" + FORGED,
    6: TERMINAL + "_FAILED",  # ends in _FAILED: CRITICAL, the state in its reason
}
MESSAGE = ("<!here> <at user_id=\"all\"></at> @all [click](http://evil.example/x) "
           "mailto:ops@evil.example" + FORGED + TERMINAL + " ![i](http://evil.example/i.png)")
HOSTILE_NAME = "<!here> [n](http://evil.example/n) @all"


def hostile_scenario() -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        {"id": job_id(n), "name": f"state job {n}", "fail_at": 0, "fail_status": state,
         "error_code": "DRS.M05004", "error_msg": MESSAGE}
        for n, state in STATES.items()]
    # The first job's state changes an hour in: a state change to show in the second run.
    jobs[0]["changes"] = [{"at": 60, "fail_status": "<@U999> @here"}]
    jobs.append({"id": job_id(7), "name": HOSTILE_NAME, "fail_at": 0,
                 "fail_status": "INCRE_TRANSFER_FAILED", "error_code": "<!here>",
                 "error_msg": MESSAGE})
    # A job failing an hour in, so the second run alerts too.
    jobs.append({"id": job_id(8), "name": "later", "fail_at": 60,
                 "fail_status": "FULL_TRANSFER_FAILED", "error_code": "DRS.M03023",
                 "error_msg": MESSAGE})
    return {"jobs": jobs}


KINDS = ("slack", "teams", "feishu", "dingtalk", "wecom", "smn")


def channels(hooks: dict[str, Receiver], relay_port: int) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = []
    for mode in ("digest", "alert"):
        for kind in (*KINDS, "webhook"):
            config: dict[str, Any] = {"type": kind, "name": f"{kind}-{mode}", "mode": mode}
            if kind == "smn":
                config.update(topic_urn="urn:smn:cn-north-4:5237e10fe9aa4ad5b16b6a5245248314:x",
                              endpoint=hooks["smn"].url.rstrip("/"))
            else:
                config["url"] = hooks[kind].url
            config.update({"feishu": {"secret": FEISHU_SECRET},
                           "dingtalk": {"secret": DINGTALK_SECRET},
                           "webhook": {"secret": WEBHOOK_SECRET}}.get(kind, {}))
            configs.append(config)
        configs.append({"type": "smtp", "name": f"mail-{mode}", "mode": mode,
                        "host": "127.0.0.1", "port": relay_port, "security": "none",
                        "from": "drs@example.com", "to": ["dba@example.com"]})
    return configs


@dataclass
class Runs:
    hooks: dict[str, Receiver]
    mails: list[bytes]
    outputs: list[dict[str, Path]]
    settings: Any
    tmp_path: Path


@pytest.fixture
def runs(webhooks: dict[str, Receiver], tmp_path: Path) -> Iterator[Runs]:
    with make_emulator(scenario=scenario_from_dict(hostile_scenario()), speed=0) as emu, \
            HostileSMTP() as relay:
        settings = make_settings(emu, tmp_path, channels=channels(webhooks, relay.port),
                                 delivery={"max_attempts": 1})
        outputs = []
        for n in range(2):  # the second run an hour later, forced: digest and alert again
            result = run_cycle(settings, canary_credentials(), force=n == 1)
            assert [o.status for o in result.deliveries] == ["sent"] * 16, \
                [o.reason for o in result.deliveries if o.status != "sent"]
            outputs.append({fmt: Path(path) for fmt, path in result.outputs.items()})
            emu.advance(3600)
        yield Runs(webhooks, list(relay.messages), outputs, settings, tmp_path)


# What would still act, medium by medium.
LIVE_EVERYWHERE = ("\x1b", "\x07", "\x9b", "http://evil", "www.evil", "mailto:ops", "\r")
LIVE_IN_CHAT = ("<!channel>", "<!here>", "<@U123>", "<@U999>", "<at user_id", "@all",
                "@here", "](http", "![", "[click", "[x]")
FORGED_LINE = re.compile(r"^\s*(?:- )?(?:\[CRITICAL\]|\*{1,2}CRITICAL\*{1,2}) FORGED", re.M)


def assert_inert(text: str, where: str, *, chat: bool = True) -> None:
    for live in (*LIVE_EVERYWHERE, *(LIVE_IN_CHAT if chat else ())):
        assert live not in text, (where, live, text[:3000])
    assert not FORGED_LINE.search(text), (where, text[:3000])


def test_chat_messages_keep_hostile_states_and_messages_inert(runs: Runs) -> None:
    for kind in KINDS:
        received = runs.hooks[kind].received
        assert len(received) == 4, kind  # digest and alert, twice
        for message in received:
            text = text_of(kind, message)
            assert_inert(text, kind)
            assert "state job" in text or "later" in text, (kind, text)
        if kind == "smn":
            continue
        digest = text_of(kind, received[2])  # the second digest, with what changed
        # The states are shown, as text: escaped or as look-alikes, not dropped.
        assert "channel" in digest and "U999" in digest and "evil" in digest, (kind, digest)


def test_report_files_keep_them_inert(runs: Runs) -> None:
    for outputs in runs.outputs:
        html = outputs["html"].read_text(encoding="utf-8")
        assert "<script" not in html and 'href="http://evil' not in html
        assert "<at user_id" not in html and "&lt;!channel&gt;" in html
        assert_inert(html, "report.html", chat=False)
        md = outputs["md"].read_text(encoding="utf-8")
        assert_inert(re.sub(r"\\.", "·", md), "report.md")  # escaped characters are text
        txt = outputs["txt"].read_text(encoding="utf-8")
        assert_inert(txt, "report.txt", chat=False)
        assert "[x](http[:]//evil.example)" in txt  # shown as it came, defanged
        raw = outputs["json"].read_text(encoding="utf-8")
        assert "\x1b" not in raw and "\x9b" not in raw  # JSON escapes them...
        data = json.loads(raw)
        states = {j["job_id"]: j["transfer_status"] for j in data["jobs"]}
        assert states[job_id(6)] == STATES[6]  # ...and keeps the data as it came
        assert states[job_id(5)] == STATES[5]


def test_email_parts_keep_them_inert(runs: Runs) -> None:
    assert len(runs.mails) == 4
    for raw in runs.mails:
        mail = message_from_bytes(raw, policy=policy.default)
        for part in mail.walk():
            if part.get_content_maintype() != "text":
                continue
            body = part.get_content().replace("\r\n", "\n")  # SMTP's line ends
            if part.get_content_type() == "text/html":
                assert "<script" not in body and 'href="http://evil' not in body
            # A mailbox is no chat: "<!channel>" is only text there, but links and forged
            # lines must not act.
            assert_inert(body, part.get_content_type(), chat=False)


def test_the_webhook_carries_the_states_as_data(runs: Runs) -> None:
    for message in runs.hooks["webhook"].received:
        assert b"\x1b" not in message.body and b"\xc2\x9b" not in message.body
        states = {j["job_id"]: j["transfer_status"] for j in message.json()["jobs"]}
        assert states[job_id(1)] in (STATES[1], "<@U999> @here")


def test_chat_ops_answers_keep_them_inert(runs: Runs) -> None:
    from drs_report.web import dingtalk, feishu, slack
    from drs_report.web.commands import Commands, fit
    from drs_report.web.source import ArchiveSource

    source = ArchiveSource(runs.settings)
    try:
        commands = Commands(runs.settings, source)
        for dialect in (slack.DIALECT, dingtalk.DIALECT, feishu.DIALECT):
            for text in ("status", "problems", f"status {job_id(6)}", f"status {job_id(5)}",
                         f"status {job_id(1)}", f"history {job_id(1)} 24h",
                         f"status {job_id(7)}", "status <!channel> @all"):
                answer = "\n".join(fit(commands.answer(text, dialect), dialect))
                assert_inert(answer, f"{dialect.name}: {text}")
    finally:
        source.close()


def test_history_table_strips_terminal_sequences(runs: Runs) -> None:
    config = write_config(runs.tmp_path / "history.toml", "http://127.0.0.1:9",
                          [{"id": job_id(n)} for n in range(1, 9)],
                          str(runs.settings.store.url))
    for n in (1, 5, 6, 7):
        table = cli("history", "--config", str(config), "--job", job_id(n), "--since", "1d",
                    "--format", "table")
        assert table.returncode == 0, table.stderr
        out = table.stdout + table.stderr
        for control in ("\x1b", "\x07", "\x9b", "\r", "]52;"):
            assert control not in out, (n, control, out)
        assert len(table.stdout.splitlines()) >= 3  # header and two readings
        assert not any(line.startswith(("[CRITICAL] FORGED", "- **CRITICAL** FORGED"))
                       for line in table.stdout.splitlines())
        listed = cli("history", "--config", str(config), "--job", job_id(n), "--since", "1d",
                     "--format", "json")
        assert "\x1b" not in listed.stdout and "\x9b" not in listed.stdout
        assert json.loads(listed.stdout)[-1]["transfer_status"] in (
            STATES.get(n), "<@U999> @here", "INCRE_TRANSFER_FAILED")


# -- the CLI's own lines -------------------------------------------------------------------


def test_the_nothing_read_cause_reaches_the_terminal_without_its_sequences(
        tmp_path: Path) -> None:
    refusal = answer(401, {"error_code": "APIG.0301",
                           "error_msg": f"Incorrect IAM authentication {TERMINAL} information"})
    with HostileHTTP(refusal) as server:
        config = write_config(tmp_path / "config.toml", server.url,
                              [{"id": job_id(1)}, {"id": job_id(2)}],
                              f"sqlite:///{tmp_path / 'h.db'}")
        proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 4, proc.stderr
    assert "Incorrect IAM authentication" in proc.stderr and "information" in proc.stderr
    for control in ("\x1b", "\x07", "\x9b", "]52;"):
        assert control not in proc.stdout + proc.stderr, control
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("drs-report: error: nothing could be read: ")


def test_a_vendor_answer_in_a_delivery_line_loses_its_sequences(tmp_path: Path) -> None:
    refusal = answer(400, f"bad request {TERMINAL}\r\nfailed: forged line")
    with make_emulator() as emu, HostileHTTP(refusal) as hook:
        config = write_config(tmp_path / "config.toml", emu.url, emu.jobs_config(),
                              f"sqlite:///{tmp_path / 'h.db'}",
                              extra=f'[[channels]]\ntype = "webhook"\nurl = "{hook.url}/h"\n')
        proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 3, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("failed: ")]
    assert "HTTP 400" in line and "bad request" in line
    for control in ("\x1b", "\x07", "\x9b", "]52;", "\r"):
        assert control not in proc.stdout + proc.stderr, control
    assert not any(line.startswith("failed: forged") for line in proc.stdout.splitlines())
