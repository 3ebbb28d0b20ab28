"""Delivery channels: an explicit registry, each type imported only when configured.

    REGISTRY[type] = "module:Class"

Each channel class declares its keys (`KEYS`: name -> (kind, required, default)) so
configuration errors name the key and the fix, and implements `send(message)` (raising
DeliveryError with `permanent` set) and `describe_destination()` (secrets masked).
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

from drs_report.config import ChannelConfig, Settings
from drs_report.errors import ConfigError
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.channels.base import Channel

REGISTRY: dict[str, str] = {
    "smtp": "drs_report.channels.smtp:SmtpChannel",
    "slack": "drs_report.channels.chat:SlackChannel",
    "teams": "drs_report.channels.chat:TeamsChannel",
    "feishu": "drs_report.channels.chat:FeishuChannel",
    "lark": "drs_report.channels.chat:FeishuChannel",
    "dingtalk": "drs_report.channels.chat:DingTalkChannel",
    "wecom": "drs_report.channels.chat:WeComChannel",
    "webhook": "drs_report.channels.webhook:WebhookChannel",
    "smn": "drs_report.channels.smn:SmnChannel",
    "apprise": "drs_report.channels.apprise_channel:AppriseChannel",
}


def channel_class(ctype: str) -> type[Channel]:
    module_name, _, class_name = REGISTRY[ctype].partition(":")
    cls: type[Channel] = getattr(importlib.import_module(module_name), class_name)
    return cls


def validate_options(ctype: str, options: dict[str, Any], key: str) -> dict[str, Any]:
    """Check a channel's own keys against its declaration; return them with defaults."""
    cls = channel_class(ctype)
    known = dict(cls.KEYS)
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in known:
            hint = difflib.get_close_matches(name, list(known), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else \
                f"{ctype} channels take {', '.join(sorted(known)) or 'no other keys'}"
            raise ConfigError(f"{key}.{name}", f"unknown key; {fix}")
        checked[name] = _check(value, known[name][0], f"{key}.{name}")
    for name, (_kind, required, default) in known.items():
        if name not in checked:
            if required:
                raise ConfigError(f"{key}.{name}", f"is required for {ctype} channels")
            checked[name] = default
    return cls.validate(checked, key)


def _check(value: Any, kind: str, key: str) -> Any:
    from drs_report.secrets import Secret

    def fail(expected: str) -> ConfigError:
        return ConfigError(key, f"expected {expected}")

    if kind in ("str", "secret"):
        raw = value.reveal() if isinstance(value, Secret) else value
        if not isinstance(raw, str) or not raw.strip():
            raise fail("a non-empty string")
        return value
    if kind == "url":
        raw = value.reveal() if isinstance(value, Secret) else value
        if not isinstance(raw, str) or not raw.startswith(("https://", "http://")):
            raise fail("an http(s) URL, e.g. https://open.feishu.cn/open-apis/bot/v2/hook/...")
        return value
    if kind == "int":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail("a whole number")
        return value
    if kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise fail("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise fail("a positive number")
        return float(value)
    if kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "list":
        if isinstance(value, (str, Secret)):
            value = [value]
        if not isinstance(value, list) or not value or not all(
                isinstance(v, (str, Secret)) for v in value):
            raise fail("a list of strings")
        return value
    return value


def load_channel(config: ChannelConfig, *, settings: Settings,
                 credentials: Credentials | None,
                 session: requests.Session | None = None) -> Channel:
    return channel_class(config.type)(config, settings=settings, credentials=credentials,
                                      session=session)
