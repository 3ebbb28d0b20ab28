"""Delivery channels: an explicit registry, each type imported only when configured.

    REGISTRY[type] = "module:Class"

Each channel type's keys (name -> (kind, required, default)) are declared in
channel_options.py, where configuration checks them without importing this package; each
channel class implements `send(message)` (raising DeliveryError with `permanent` set) and
`describe_destination()` (secrets masked).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from drs_report.channel_options import validate_options
from drs_report.config import ChannelConfig, Settings
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.channels.base import Channel

__all__ = ["REGISTRY", "channel_class", "load_channel", "validate_options"]

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


def load_channel(config: ChannelConfig, *, settings: Settings,
                 credentials: Credentials | None,
                 session: requests.Session | None = None) -> Channel:
    return channel_class(config.type)(config, settings=settings, credentials=credentials,
                                      session=session)
