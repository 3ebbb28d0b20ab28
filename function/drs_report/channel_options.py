"""The keys each channel type takes: name -> (kind, required, default), and their checks.

Configuration reads these to validate `[[channels]]` tables up front; the channel classes
(channels/) read the checked options. Keeping the schemas here, below both, lets config
validate a channel without importing the channel modules (and what they import: render,
analysis, config itself), so imports only point down:

    config -> channel_options <- channels

Kinds: str, secret (masked everywhere), url (http or https), int, float, bool, list (of
strings). A channel type with cross-key rules (smtp's ports, smn's topic, apprise's import) has a
validator in VALIDATORS, run after the per-key checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from drs_report import environment
from drs_report.errors import ConfigError
from drs_report.secrets import Secret

# (kind, required, default)
OptionSpec = tuple[str, bool, Any]

_CHAT: dict[str, OptionSpec] = {
    "url": ("url", True, None),
    "timeout": ("float", False, 10.0),
    "language": ("str", False, None),
}
_SIGNED_CHAT: dict[str, OptionSpec] = {**_CHAT, "secret": ("secret", False, None)}

CHANNEL_OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "smtp": {
        "host": ("str", True, None),
        "port": ("int", False, None),
        "security": ("str", False, "starttls"),
        "username": ("str", False, None),
        "password": ("secret", False, None),
        "from": ("str", True, None),
        "to": ("list", True, None),
        "cc": ("list", False, []),
        "timeout": ("float", False, 30.0),
        "verify_tls": ("bool", False, True),
        "ca_file": ("str", False, None),
        "language": ("str", False, None),
    },
    "slack": _CHAT,
    "teams": _CHAT,
    "feishu": _SIGNED_CHAT,
    "lark": _SIGNED_CHAT,
    "dingtalk": _SIGNED_CHAT,
    "wecom": _CHAT,
    "webhook": _SIGNED_CHAT,
    "smn": {
        "topic_urn": ("str", False, None),  # required; _smn says where it comes from
        "region": ("str", False, None),
        "project_id": ("str", False, None),
        "endpoint": ("url", False, None),
        "timeout": ("float", False, 10.0),
        "language": ("str", False, None),
    },
    "apprise": {
        "urls": ("list", True, None),
        "max_bytes": ("int", False, 4096),
        "timeout": ("float", False, 30.0),
        "language": ("str", False, None),
    },
}

SMTP_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


def reveal(value: Any) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


def _smtp(options: dict[str, Any], key: str) -> dict[str, Any]:
    security = str(options["security"]).lower()
    if security not in SMTP_PORTS:
        raise ConfigError(f"{key}.security", f"unknown value {security!r}; use ssl "
                                             "(port 465), starttls (587) or none")
    options["security"] = security
    if options["port"] is None:
        options["port"] = SMTP_PORTS[security]
    if (options["username"] is None) != (options["password"] is None):
        raise ConfigError(f"{key}.password" if options["username"] else f"{key}.username",
                          "username and password go together; set both or neither")
    for field in ("to", "cc"):
        for i, address in enumerate(options[field]):
            if "@" not in reveal(address):
                raise ConfigError(f"{key}.{field}[{i}]",
                                  f"{reveal(address)!r} is not an email address")
    if "@" not in str(options["from"]):
        raise ConfigError(f"{key}.from", f"{options['from']!r} is not an email address")
    return options


def _apprise(options: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        import apprise  # noqa: F401
    except ImportError:
        raise ConfigError(f"{key}.type", "apprise is not installed; pip install "
                                         "'drs-report[apprise]'") from None
    return options


def _smn(options: dict[str, Any], key: str) -> dict[str, Any]:
    if not options.get("topic_urn"):
        raise ConfigError(f"{key}.topic_urn", "is required for smn channels; with the topic "
                                              "the Terraform module creates, write "
                                              f'topic_urn = "${{{environment.SMN_TOPIC_URN}}}"')
    return options


VALIDATORS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "smtp": _smtp,
    "smn": _smn,
    "apprise": _apprise,
}


def validate_options(ctype: str, options: dict[str, Any], key: str) -> dict[str, Any]:
    """Check a channel's own keys against its declaration; return them with defaults."""
    known = CHANNEL_OPTIONS[ctype]
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if name not in known:
            hint = difflib.get_close_matches(name, list(known), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else \
                f"{ctype} channels take {', '.join(sorted(known)) or 'no other keys'}"
            raise ConfigError(f"{key}.{name}", f"unknown key; {fix}")
        checked[name] = check_option(value, known[name][0], f"{key}.{name}")
    for name, (_kind, required, default) in known.items():
        if name not in checked:
            if required:
                raise ConfigError(f"{key}.{name}", f"is required for {ctype} channels")
            checked[name] = default
    validator = VALIDATORS.get(ctype)
    return validator(checked, key) if validator else checked


def check_option(value: Any, kind: str, key: str) -> Any:
    """One value against its kind; numbers and booleans may also come as text."""

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
