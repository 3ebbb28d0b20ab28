"""Settings: the TOML file and the environment, validated up front.

Every problem is a ConfigError naming the dotted key (`channels[2].port`, `jobs[0].id`) and
the fix, in one line. Any string value may be `${ENV_NAME}` (or `${ENV_NAME:-default}`).
Values that are secrets (passwords, webhook URLs and keys) become `Secret` on load.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, TypeVar

from drs_report import environment
from drs_report.errors import ConfigError
from drs_report.secrets import Credentials, Secret

T = TypeVar("T")


class FromEnvironment(str):
    """Text that came from the environment (DRS_REPORT_* or a ${NAME} reference).

    The environment only holds text, so numbers and booleans may arrive as text from there;
    the same text typed in the file ("60" in quotes) is a type error, as in TOML.
    """

# DRS ids are 8-4-4-4-12 of [0-9a-z]; the docs' own examples are not hex (`...1040402fjb21`).
JOB_ID_RE = re.compile(r"^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$")
PROJECT_ID_RE = re.compile(r"^[0-9a-zA-Z]{16,64}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

LANGUAGES = ("en-us", "zh-cn")
CHANNEL_TYPES = (
    "smtp", "slack", "teams", "feishu", "lark", "dingtalk", "wecom", "webhook", "smn", "apprise",
)
CHANNEL_MODES = ("digest", "alert")
JOB_TYPES = ("migration", "sync", "cloudDataGuard")
# Channel keys whose values are secrets whatever the channel type. Webhook URLs are secrets
# too: Slack, DingTalk, WeCom and Feishu put the bot's token in the URL itself.
SECRET_CHANNEL_KEYS = frozenset({"password", "secret", "url", "token", "key", "urls"})
# A target's own keys, for a project in another account (`[[drs.targets]]`).
TARGET_SECRET_KEYS = ("ak", "sk", "security_token")


@dataclass(frozen=True)
class Thresholds:
    delay_warn_seconds: float = 60.0
    delay_crit_seconds: float = 300.0
    stall_minutes: float = 30.0


@dataclass(frozen=True)
class ReadinessConfig:
    """`[readiness]` (and `jobs[].readiness_*`): when a job may be switched over."""

    max_delay_seconds: float = 5.0  # incremental delay, and comparison delay, at most this
    stable_minutes: float = 30.0  # ... for this long, with recent comparison readings


@dataclass(frozen=True)
class JobConfig:
    id: str
    name: str | None = None
    compare_jobs: tuple[str, ...] = ()
    auto_compare: bool = False  # compare_jobs = "auto": list them via the API
    thresholds: Thresholds = field(default_factory=Thresholds)  # global merged with the job's
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)  # the same


@dataclass(frozen=True)
class DiscoveryConfig:
    """`jobs = "all"`: list the project's jobs via GET /v5/{project_id}/jobs."""

    enabled: bool = False
    name: str | None = None  # the API's own `name` filter (ids or a name fragment)
    job_type: str | None = None  # migration | sync | cloudDataGuard
    compare_jobs_auto: bool = True


@dataclass(frozen=True)
class DrsConfig:
    region: str
    project_id: str
    endpoint: str
    language: str = "en-us"
    batch_size: int = 100  # job ids per batch-progress request
    max_workers: int = 8  # requests in flight at once
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    requests_per_second: float | None = None  # client-side cap; None: adapt to 429s only


@dataclass(frozen=True)
class TargetConfig:
    """One region and project whose jobs are read: a `[[drs.targets]]` table, or the
    single `[drs]` form (then named after its region)."""

    name: str
    drs: DrsConfig  # the target's region, project_id and endpoint; shared settings the rest
    jobs: tuple[JobConfig, ...] = ()
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    credentials: Credentials | None = None  # ak/sk/security_token of the target; else shared

    @property
    def project_id(self) -> str:
        return self.drs.project_id

    @property
    def region(self) -> str:
        return self.drs.region


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///drs-report.db"
    retention_days: int = 90
    report_retention_days: int = 30
    prune_batch_size: int = 5000
    sync: str | None = None  # obs://BUCKET/KEY: the SQLite file is kept there between runs
    obs_endpoint: str | None = None  # default https://obs.{drs.region}.myhuaweicloud.com
    ephemeral: bool = False  # in FunctionGraph: accept history that dies with the instance


@dataclass(frozen=True)
class ReportConfig:
    output_dir: Path = Path("reports/out")
    templates_dir: Path | None = None  # user templates, looked up before the shipped ones
    title: str | None = None
    trend_hours: float = 24.0
    time_zone: str = "UTC"


@dataclass(frozen=True)
class DeliveryConfig:
    time_zone: str = "UTC"  # the day a digest belongs to
    digest_earliest: time | None = None  # no digest before this local time
    alert_reminder_hours: float = 6.0  # repeat unresolved CRITICAL problems this often
    max_attempts: int = 3


@dataclass(frozen=True)
class ChannelConfig:
    index: int
    type: str
    name: str
    mode: str
    options: Mapping[str, Any]  # the type's own keys; secrets already wrapped in Secret

    @property
    def key(self) -> str:
        return f"channels[{self.index}]"


@dataclass(frozen=True)
class RunConfig:
    safety_margin_seconds: float = 10.0  # stop fetching this long before the deadline
    time_budget_seconds: float | None = None  # CLI: give up fetching after this long


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: the HTTP side (chat-ops commands and the report archive); see web/."""

    base_url: str | None = None  # where `serve` or the APIG trigger is reached; enables links
    token: Secret | None = None  # bearer token for the archive
    link_secret: Secret | None = None  # HMAC key of signed expiring links
    link_expiry_hours: float = 168.0  # how long a link in a digest or alert stays valid
    slack_signing_secret: Secret | None = None
    dingtalk_secret: Secret | None = None
    feishu_app_id: str | None = None
    feishu_app_secret: Secret | None = None
    feishu_verification_token: Secret | None = None
    feishu_encrypt_key: Secret | None = None
    feishu_api: str = "https://open.feishu.cn"
    max_body_bytes: int = 65536
    live_seconds: float = 2.0  # time `status <job> live` may spend fetching from DRS
    page_size: int = 50  # runs per page of /reports

    def secrets(self) -> list[Secret]:
        return [s for s in (self.token, self.link_secret, self.slack_signing_secret,
                            self.dingtalk_secret, self.feishu_app_secret,
                            self.feishu_verification_token, self.feishu_encrypt_key)
                if s is not None]


@dataclass(frozen=True)
class Settings:
    drs: DrsConfig
    jobs: tuple[JobConfig, ...] = ()
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    thresholds: Thresholds = field(default_factory=Thresholds)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    channels: tuple[ChannelConfig, ...] = ()
    run: RunConfig = field(default_factory=RunConfig)
    source: Path | None = None
    web: WebConfig = field(default_factory=WebConfig)
    readiness: ReadinessConfig = field(default_factory=ReadinessConfig)
    # Every target; empty means the single form's one (see `fleet`). With targets, `drs` is
    # the first target's, `jobs` every target's listed jobs and `discovery` enabled when
    # any target discovers its jobs.
    targets: tuple[TargetConfig, ...] = ()
    estate: bool = False  # the configuration lists [[drs.targets]]

    def fleet(self) -> tuple[TargetConfig, ...]:
        """The targets to read: those of [[drs.targets]], or the single [drs] one."""
        if self.targets:
            return self.targets
        return (TargetConfig(name=self.drs.region, drs=self.drs, jobs=self.jobs,
                             discovery=self.discovery),)

    def without_shared_keys(self) -> Credentials | None:
        """When every target has its own keys, the run needs no shared ones (environment or
        agency): the first target's stand in for them (they sign nothing else)."""
        fleet = self.targets
        if fleet and all(t.credentials is not None for t in fleet):
            return fleet[0].credentials
        return None

    def single_project(self) -> str | None:
        """The project that history stored before targets existed belongs to: the one
        target's (with several, such readings count for whichever target lists the job)."""
        fleet = self.fleet()
        return fleet[0].project_id if len(fleet) == 1 else None

    def target_of(self, project_id: str) -> TargetConfig | None:
        return next((t for t in self.fleet() if t.project_id == project_id), None)

    def readiness_of(self, job_id: str) -> ReadinessConfig:
        """The job's readiness keys: its own, else the global ones (also for discovered jobs)."""
        return next((j.readiness for j in self.jobs if j.id == job_id), self.readiness)

    def secret_values(self) -> list[str]:
        """Every secret in the settings, for redaction filters."""
        found: list[str] = []
        for channel in self.channels:
            for value in channel.options.values():
                values = value if isinstance(value, (list, tuple)) else [value]
                for item in values:
                    if isinstance(item, Secret):
                        found.extend(_secret_parts(item.reveal()))
        password = _url_password(self.store.url)
        if password:
            found.append(password)
        found.extend(secret.reveal() for secret in self.web.secrets())
        for target in self.targets:
            if target.credentials is not None:
                found.extend(target.credentials.secrets())
        return found


def _secret_parts(value: str) -> list[str]:
    """A secret, and for a webhook URL also the parts that carry its token on their own
    (HTTP libraries log the path and query without the host)."""
    parts = [value]
    if re.match(r"^https?://", value):
        from urllib.parse import parse_qsl, urlsplit

        split = urlsplit(value)
        if split.path.strip("/"):
            parts.append(split.path + (f"?{split.query}" if split.query else ""))
            parts.extend(seg for seg in split.path.split("/") if len(seg) >= 16)
        parts.extend(v for _, v in parse_qsl(split.query) if len(v) >= 8)
    return parts


def _url_password(url: str) -> str | None:
    match = re.match(r"^[a-z0-9+]+://[^:/@]*:([^@]*)@", url)
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------
# Loading


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("--config", f"no such file {path}; pass the path of a TOML file")
    try:
        return parse_toml(path.read_bytes().decode("utf-8"))
    except ValueError as e:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        if isinstance(e, UnicodeDecodeError):
            raise ConfigError("--config", f"{path} is not UTF-8 text; save it as UTF-8") from None
        raise ConfigError("--config", f"{path} is not valid TOML ({e}); fix the syntax") from None


def parse_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10, as FunctionGraph still offers it
        import tomli as tomllib
    return tomllib.loads(text)


def load_settings(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the file (if any), apply DRS_REPORT_* environment overrides, validate."""
    # A Mapping, not a copy: FunctionGraph's user data answers lookups (getUserData), and a
    # copy would hold only the names probed in advance.
    env: Mapping[str, str] = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    _apply_environment(data, env)
    if overrides:
        _deep_merge(data, dict(overrides))
    return parse_settings(data, env, source=path)


_ENV_SECTIONS = ("drs", "store", "report", "thresholds", "delivery", "run", "web",
                 "readiness")


def _apply_environment(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(environment.SETTING_PREFIX):
            continue
        rest = name[len(environment.SETTING_PREFIX) :].lower()
        matched = False
        for section in _ENV_SECTIONS:
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1 :]
                if key in _SECTION_KEYS[section]:
                    matched = True
                    table = data.setdefault(section, {})
                    if isinstance(table, dict):
                        table[key] = FromEnvironment(value)
                break
        if not matched:
            _warn_unknown_variable(name)
    drs = data.get("drs")
    estate = isinstance(drs, dict) and "targets" in drs
    if environment.PROJECT_ID in env and not estate:
        data.setdefault("drs", {}).setdefault("project_id", env[environment.PROJECT_ID])


def setting_variables() -> list[str]:
    """Every DRS_REPORT_* name drs-report reads: one per scalar setting, and its own."""
    names = [f"{environment.SETTING_PREFIX}{section.upper()}_{key.upper()}"
             for section in _ENV_SECTIONS for key in _SECTION_KEYS[section]]
    names += [value for value in vars(environment).values()
              if isinstance(value, str) and value.startswith(environment.SETTING_PREFIX)
              and value != environment.SETTING_PREFIX]
    return names


def _warn_unknown_variable(name: str) -> None:
    """A DRS_REPORT_* variable that sets nothing is a typo more often than not: say so."""
    known = setting_variables()
    if name in known:
        return
    import logging

    hint = difflib.get_close_matches(name, known, n=1)
    fix = f"did you mean {hint[0]}?" if hint else \
        "the names are DRS_REPORT_<SECTION>_<KEY>, e.g. DRS_REPORT_STORE_URL"
    logging.getLogger("drs_report.config").warning(
        "environment variable %s matches no setting and is ignored; %s", name, fix)


def _deep_merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


_TOP_KEYS = (
    "drs", "jobs", "discovery", "store", "report", "thresholds", "delivery", "channels", "run",
    "web", "readiness",
)
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "drs": (
        "region", "project_id", "endpoint", "language", "batch_size", "max_workers",
        "connect_timeout", "read_timeout", "max_retries", "backoff_base", "backoff_max",
        "verify_tls", "ca_bundle", "requests_per_second",
    ),
    "target": ("name", "region", "project_id", "endpoint", "ak", "sk", "security_token",
               "requests_per_second", "jobs", "discovery"),
    "job": ("id", "name", "compare_jobs", "delay_warn_seconds", "delay_crit_seconds",
            "stall_minutes", "readiness_max_delay_seconds", "readiness_stable_minutes"),
    "discovery": ("name", "job_type", "compare_jobs"),
    "store": ("url", "retention_days", "report_retention_days", "prune_batch_size", "sync",
              "obs_endpoint", "ephemeral"),
    "report": ("output_dir", "templates_dir", "title", "trend_hours", "time_zone"),
    "thresholds": ("delay_warn_seconds", "delay_crit_seconds", "stall_minutes"),
    "delivery": ("time_zone", "digest_earliest", "alert_reminder_hours", "max_attempts"),
    "run": ("safety_margin_seconds", "time_budget_seconds"),
    "web": ("base_url", "token", "link_secret", "link_expiry_hours", "slack_signing_secret",
            "dingtalk_secret", "feishu_app_id", "feishu_app_secret",
            "feishu_verification_token", "feishu_encrypt_key", "feishu_api", "max_body_bytes",
            "live_seconds", "page_size"),
    "readiness": ("max_delay_seconds", "stable_minutes"),
}


class _Reader:
    """Typed access to one TOML table, with the dotted path for error messages."""

    def __init__(self, table: Any, path: str, env: Mapping[str, str]) -> None:
        if not isinstance(table, dict):
            raise ConfigError(path, f"expected a table, got {_type_name(table)}")
        self.table = table
        self.path = path
        self.env = env

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def check_unknown(self, allowed: tuple[str, ...], extra: tuple[str, ...] = ()) -> None:
        for name in self.table:
            if name not in allowed and name not in extra and self.path and name in _TOP_KEYS:
                # TOML puts every key after [drs] into [drs]: `jobs = "all"` there means the
                # line is below the table header, not that [drs] has a jobs key.
                raise ConfigError(self.key(name), f"{name} belongs at the top of the file, "
                                                  "before the first [table] (every key below "
                                                  f"[{self.path.split('[')[0]}] is part of "
                                                  "it); move the line up")
            if name not in allowed and name not in extra:
                hint = difflib.get_close_matches(name, allowed + extra, n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"known keys: {', '.join(allowed)}"
                raise ConfigError(self.key(name), f"unknown key; {fix}")

    def raw(self, name: str) -> Any:
        value = self.table.get(name)
        if isinstance(value, str):
            return expand_env(value, self.env, self.key(name))
        return value

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise ConfigError(self.key(name), "is required; set it in the file or environment")
            return default
        if not isinstance(value, str):
            raise ConfigError(self.key(name), f"expected a string, got {_type_name(value)}")
        return value.strip()

    def number(self, name: str, default: T, *, minimum: float = 0, integer: bool = False) -> T:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, str) and not isinstance(value, FromEnvironment):
            kind = "a whole number" if integer else "a number"
            raise ConfigError(self.key(name), f"expected {kind}, got the string {value!r}; "
                                              f"write it without quotes: {name} = {value}")
        if isinstance(value, str):  # from ${ENV} or DRS_REPORT_* variables
            try:
                value = int(value) if integer else float(value)
            except ValueError:
                kind = "a whole number" if integer else "a number"
                raise ConfigError(self.key(name), f"expected {kind}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key(name), f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise ConfigError(self.key(name), f"expected a finite number, got {value}")
        if integer and not float(value).is_integer():
            raise ConfigError(self.key(name), f"expected a whole number, got {value}")
        if value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum:g}, got {value}")
        return int(value) if integer else float(value)  # type: ignore[return-value]

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, FromEnvironment) and value.lower() in (
                "true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, str) and value.lower() in ("true", "false"):
            raise ConfigError(self.key(name), f"expected true or false, got the string "
                                              f"{value!r}; write it without quotes: "
                                              f"{name} = {value.lower()}")
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"expected true or false, got {_type_name(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(name, default)
        assert isinstance(value, str)
        if value.lower() not in choices:
            hint = difflib.get_close_matches(value.lower(), choices, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else f"use one of {', '.join(choices)}"
            raise ConfigError(self.key(name), f"unknown value {value!r}; {fix}")
        return value.lower()


def _type_name(value: Any) -> str:
    return {
        dict: "a table", list: "an array", str: "a string", bool: "a boolean",
        int: "an integer", float: "a number",
    }.get(type(value), type(value).__name__)


def expand_env(value: str, env: Mapping[str, str], key: str) -> str:
    """Replace ${NAME} and ${NAME:-default}; a missing variable without default is an error."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(key, f"environment variable {name} is not set; export it or "
                               f"write ${{{name}:-default}}")

    expanded = ENV_REF_RE.sub(replace, value)
    if isinstance(value, FromEnvironment) or expanded != value or ENV_REF_RE.search(value):
        return FromEnvironment(expanded)
    return expanded


def parse_settings(
    data: Mapping[str, Any], env: Mapping[str, str], *, source: Path | None = None
) -> Settings:
    top = _Reader(dict(data), "", env)
    top.check_unknown(_TOP_KEYS)
    for section in (*_ENV_SECTIONS, "discovery"):
        # A top-level key (jobs = "all") written below a [table] header lands in that table;
        # say so before "jobs is required" sends the reader looking elsewhere.
        table = data.get(section)
        if isinstance(table, dict):
            _Reader(table, section, env).check_unknown(
                _SECTION_KEYS[section], extra=("targets",) if section == "drs" else ())
    base_dir = source.parent if source is not None else Path.cwd()
    in_functiongraph = bool(env.get(environment.CODE_ROOT))
    # The code directory is read-only in FunctionGraph: what we write goes under /tmp.
    write_dir = Path(environment.FUNCTIONGRAPH_TMP) if in_functiongraph else base_dir

    thresholds = _parse_thresholds(_Reader(data.get("thresholds", {}), "thresholds", env),
                                   Thresholds())
    readiness = _parse_readiness(_Reader(data.get("readiness", {}), "readiness", env),
                                 ReadinessConfig())
    drs_table = data.get("drs", {})
    targets: tuple[TargetConfig, ...] = ()
    if isinstance(drs_table, dict) and "targets" in drs_table:
        targets = _parse_targets(drs_table, data, env, thresholds, readiness)
        drs = targets[0].drs
        jobs = tuple(j for t in targets for j in t.jobs)
        discovery = next((t.discovery for t in targets if t.discovery.enabled),
                         DiscoveryConfig())
    else:
        drs = _parse_drs(_Reader(drs_table, "drs", env), env)
        jobs, discovery = _parse_jobs(data.get("jobs"), data.get("discovery"), env, thresholds,
                                      readiness)
    store = _parse_store(_Reader(data.get("store", {}), "store", env), write_dir,
                         region=drs.region, in_functiongraph=in_functiongraph)
    report = _parse_report(_Reader(data.get("report", {}), "report", env), base_dir,
                           write_dir=write_dir)
    delivery = _parse_delivery(_Reader(data.get("delivery", {}), "delivery", env))
    run = _parse_run(_Reader(data.get("run", {}), "run", env))
    channels = _parse_channels(data.get("channels", []), env)
    web = _parse_web(_Reader(data.get("web", {}), "web", env))
    _check_readiness_window(readiness, jobs, store, report)
    return Settings(
        drs=drs, jobs=jobs, discovery=discovery, store=store, report=report,
        thresholds=thresholds, delivery=delivery, channels=channels, run=run, source=source,
        web=web, readiness=readiness, targets=targets, estate=bool(targets),
    )


_TARGET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _parse_targets(drs_table: dict[str, Any], data: Mapping[str, Any], env: Mapping[str, str],
                   thresholds: Thresholds, readiness: ReadinessConfig
                   ) -> tuple[TargetConfig, ...]:
    """`[[drs.targets]]`: several regions and projects; [drs]'s other keys are shared."""
    if "jobs" in data:
        raise ConfigError("jobs", "is set at the top level and [[drs.targets]] is listed too; "
                                  "give each target its own jobs (drs.targets[N].jobs) and "
                                  "remove the top-level jobs")
    items = drs_table["targets"]
    if not isinstance(items, list) or not items:
        raise ConfigError("drs.targets", "expected at least one [[drs.targets]] table with a "
                                         "region and project_id")
    for key in ("project_id", "endpoint"):
        if key in drs_table:
            raise ConfigError(f"drs.{key}", "is set in [drs] and [[drs.targets]] is listed "
                                            f"too; set {key} in each target and remove it "
                                            "from [drs]")
    shared = {k: v for k, v in drs_table.items() if k != "targets"}
    shared_reader = _Reader(shared, "drs", env)
    shared_reader.check_unknown(_SECTION_KEYS["drs"], extra=("targets",))
    default_region = shared_reader.string("region")
    parsed: list[TargetConfig] = []
    names: dict[str, int] = {}
    projects: dict[str, int] = {}
    job_ids: dict[str, int] = {}
    for i, item in enumerate(items):
        path = f"drs.targets[{i}]"
        r = _Reader(item, path, env)
        r.check_unknown(_SECTION_KEYS["target"])
        table = dict(shared)
        for key in ("region", "project_id", "endpoint", "requests_per_second"):
            if key in item:
                table[key] = item[key]
        if "region" not in table:
            raise ConfigError(r.key("region"), "is required; e.g. region = \"cn-north-4\"")
        if "project_id" not in table:
            raise ConfigError(r.key("project_id"), "is required; copy the project's ID from "
                                                   "'My Credentials' in the console")
        drs = _parse_drs(_Reader(table, path, env), env, check=False)
        name = r.string("name")
        if name is None:
            if len(items) > 1:
                raise ConfigError(r.key("name"), "is required when there are several targets; "
                                                 f"e.g. name = \"prod-{drs.region}\"")
            name = drs.region or default_region
        if not _TARGET_NAME_RE.match(name):
            raise ConfigError(r.key("name"), f"{name!r} is not a target name (letters, digits, "
                                             "'.', '_' or '-', up to 64); e.g. prod-cn-north-4")
        if name in names:
            raise ConfigError(r.key("name"), f"{name!r} is also drs.targets[{names[name]}]'s "
                                             "name; give each target its own")
        names[name] = i
        if drs.project_id in projects:
            raise ConfigError(r.key("project_id"), f"{drs.project_id} is also "
                                                   f"drs.targets[{projects[drs.project_id]}]'s "
                                                   "project; list each project once")
        projects[drs.project_id] = i
        credentials = _parse_target_credentials(r)
        jobs_value = item.get("jobs")
        own_discovery = item.get("discovery")
        discovery_table = own_discovery
        if isinstance(jobs_value, str) and own_discovery is None:
            discovery_table = data.get("discovery")  # the shared filters
        if jobs_value is None and own_discovery is None:
            raise ConfigError(r.key("jobs"), 'is required; add [[drs.targets.jobs]] tables '
                                             'with an id, or jobs = "all"')
        try:
            jobs, discovery = _parse_jobs(jobs_value, discovery_table, env, thresholds,
                                          readiness)
        except ConfigError as e:
            shared_filters = own_discovery is None and e.key.startswith("discovery")
            raise (e if shared_filters else ConfigError(f"{path}.{e.key}", e.problem)
                   ) from None
        for j, job in enumerate(jobs):
            if job.id in job_ids:
                raise ConfigError(f"{path}.jobs[{j}].id", f"{job.id} is also listed under "
                                                          f"drs.targets[{job_ids[job.id]}]; "
                                                          "a job belongs to one project")
            job_ids[job.id] = i
        parsed.append(TargetConfig(name=name, drs=drs, jobs=jobs, discovery=discovery,
                                   credentials=credentials))
    return tuple(parsed)


def _parse_target_credentials(r: _Reader) -> Credentials | None:
    """A target's own keys, usually `${NAME}` references; both ak and sk, or neither."""
    ak, sk = r.string("ak"), r.string("sk")
    token = r.string("security_token")
    if ak is None and sk is None:
        if token is not None:
            raise ConfigError(r.key("security_token"), "needs ak and sk in the same target; "
                                                       "set them or remove security_token")
        return None
    for name, value in (("ak", ak), ("sk", sk)):
        if value is None:
            raise ConfigError(r.key(name), "is required with the other key of the pair; "
                                           f'e.g. {name} = "${{{name.upper()}_NAME}}"')
    return Credentials.of(ak, sk, token)


def _parse_drs(r: _Reader, env: Mapping[str, str], *, check: bool = True) -> DrsConfig:
    if check:
        r.check_unknown(_SECTION_KEYS["drs"])
    region = r.string("region", required=True)
    if not REGION_RE.match(region):
        raise ConfigError(r.key("region"), f"{region!r} is not a region name like 'cn-north-4'")
    project_id = r.string("project_id")
    if project_id is None:
        # Inside FunctionGraph the function's own project is the natural default.
        project_id = env.get("RUNTIME_PROJECT_ID") or None
    if project_id is None:
        raise ConfigError(r.key("project_id"), "is required; copy it from 'My Credentials' "
                                               "in the console (32 hex digits)")
    if not PROJECT_ID_RE.match(project_id):
        raise ConfigError(r.key("project_id"), f"{project_id!r} is not a project ID "
                                               "(16-64 letters and digits, usually 32 hex)")
    endpoint = r.string("endpoint") or f"https://drs.{region}.myhuaweicloud.com"
    if not re.match(r"^https?://[^\s/?#]+(:\d+)?/?$", endpoint):
        raise ConfigError(r.key("endpoint"), f"{endpoint!r} is not an http(s) URL with a host; "
                                             "e.g. https://drs.cn-north-4.myhuaweicloud.com")
    return DrsConfig(
        region=region,
        project_id=project_id,
        endpoint=endpoint.rstrip("/"),
        language=r.choice("language", LANGUAGES, "en-us"),
        batch_size=r.number("batch_size", 100, minimum=1, integer=True),
        max_workers=r.number("max_workers", 8, minimum=1, integer=True),
        connect_timeout=r.number("connect_timeout", 5.0, minimum=0.1),
        read_timeout=r.number("read_timeout", 30.0, minimum=0.1),
        max_retries=r.number("max_retries", 4, minimum=0, integer=True),
        backoff_base=r.number("backoff_base", 0.5, minimum=0),
        backoff_max=r.number("backoff_max", 20.0, minimum=0),
        verify_tls=r.boolean("verify_tls", True),
        ca_bundle=r.string("ca_bundle"),
        requests_per_second=r.number("requests_per_second", None, minimum=0.01),
    )


def _parse_thresholds(r: _Reader, base: Thresholds, *, extra: tuple[str, ...] = ()) -> Thresholds:
    if not extra:
        r.check_unknown(_SECTION_KEYS["thresholds"])
    warn = r.number("delay_warn_seconds", base.delay_warn_seconds)
    crit = r.number("delay_crit_seconds", base.delay_crit_seconds)
    if crit < warn:
        raise ConfigError(r.key("delay_crit_seconds"),
                          f"must not be below delay_warn_seconds ({warn:g}); raise it")
    return Thresholds(delay_warn_seconds=warn, delay_crit_seconds=crit,
                      stall_minutes=r.number("stall_minutes", base.stall_minutes, minimum=1))


def _parse_readiness(r: _Reader, base: ReadinessConfig, *, prefix: str = "") -> ReadinessConfig:
    """`[readiness]` keys, or a job's `readiness_*` ones (`prefix`) over the global ones."""
    if not prefix:
        r.check_unknown(_SECTION_KEYS["readiness"])
    return ReadinessConfig(
        max_delay_seconds=r.number(f"{prefix}max_delay_seconds", base.max_delay_seconds),
        stable_minutes=r.number(f"{prefix}stable_minutes", base.stable_minutes, minimum=1),
    )


def _check_readiness_window(readiness: ReadinessConfig, jobs: tuple[JobConfig, ...],
                            store: StoreConfig, report: ReportConfig) -> None:
    """A stable window the history cannot hold would keep every job from ever being ready."""
    windows = [("readiness.stable_minutes", readiness.stable_minutes)] + [
        (f"jobs[{i}].readiness_stable_minutes", job.readiness.stable_minutes)
        for i, job in enumerate(jobs) if job.readiness.stable_minutes != readiness.stable_minutes]
    for key, minutes in windows:
        if minutes > store.retention_days * 1440:
            raise ConfigError(key, f"{minutes:g} minutes is longer than the "
                                   f"{store.retention_days} days store.retention_days keeps "
                                   "readings; lower it or raise store.retention_days")
        if store.sync is not None and minutes > report.trend_hours * 60:
            # Beyond the trend window a synced file keeps one reading an hour, a gap the
            # readiness rules would read as missing history.
            raise ConfigError(key, f"{minutes:g} minutes is longer than report.trend_hours "
                                   f"({report.trend_hours:g} h), beyond which a store kept in "
                                   "OBS (store.sync) keeps one reading an hour; lower it or "
                                   "raise report.trend_hours")


def _parse_job_id(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a DRS job id string, got {_type_name(value)}")
    text = str(value).strip()
    if not JOB_ID_RE.match(text):
        raise ConfigError(key, f"{text!r} is not a DRS id (8-4-4-4-12 lowercase letters and "
                               "digits, as shown in the DRS console)")
    return text


def _parse_jobs(
    jobs: Any, discovery: Any, env: Mapping[str, str], thresholds: Thresholds,
    readiness: ReadinessConfig | None = None,
) -> tuple[tuple[JobConfig, ...], DiscoveryConfig]:
    disc_reader = _Reader(discovery if discovery is not None else {}, "discovery", env)
    disc_reader.check_unknown(_SECTION_KEYS["discovery"])
    if jobs is None:
        if discovery is None:
            raise ConfigError("jobs", 'is required; add [[jobs]] tables with an id, or '
                                      'jobs = "all" to watch every job of the project')
        jobs = "all"
    if isinstance(jobs, str):
        if expand_env(jobs, env, "jobs").strip().lower() != "all":
            raise ConfigError("jobs", f'expected [[jobs]] tables or "all", got {jobs!r}')
        compare = disc_reader.raw("compare_jobs")
        if compare not in (None, "auto", "none"):
            raise ConfigError("discovery.compare_jobs", 'expected "auto" or "none"')
        job_type = None
        if disc_reader.raw("job_type"):
            # The API spells it cloudDataGuard; accept any case, send the API's spelling.
            spelled = {t.lower(): t for t in JOB_TYPES}
            job_type = spelled[str(disc_reader.choice("job_type", tuple(spelled), ""))]
        return (), DiscoveryConfig(
            enabled=True,
            name=disc_reader.string("name"),
            job_type=job_type,
            compare_jobs_auto=compare != "none",
        )
    if discovery is not None:
        raise ConfigError("discovery", 'only applies with jobs = "all"; remove it or set '
                                       'jobs = "all"')
    if not isinstance(jobs, list) or not jobs:
        raise ConfigError("jobs", "expected at least one [[jobs]] table with an id")
    parsed: list[JobConfig] = []
    seen: set[str] = set()
    for i, item in enumerate(jobs):
        r = _Reader(item, f"jobs[{i}]", env)
        r.check_unknown(_SECTION_KEYS["job"])
        job_id = _parse_job_id(r.raw("id"), r.key("id")) if "id" in item else None
        if job_id is None:
            raise ConfigError(r.key("id"), "is required; copy the job id from the DRS console")
        if job_id in seen:
            raise ConfigError(r.key("id"), f"{job_id} is listed twice; remove one")
        seen.add(job_id)
        compare = item.get("compare_jobs", [])
        auto = False
        compare_ids: list[str] = []
        if isinstance(compare, str) and compare.strip().lower() == "auto":
            auto = True
        elif isinstance(compare, list):
            for j, cid in enumerate(compare):
                compare_ids.append(_parse_job_id(cid, f"{r.key('compare_jobs')}[{j}]"))
        else:
            raise ConfigError(r.key("compare_jobs"),
                              f'expected a list of comparison ids or "auto", got '
                              f"{_type_name(compare)}")
        name = r.string("name")
        parsed.append(JobConfig(
            id=job_id, name=name, compare_jobs=tuple(compare_ids), auto_compare=auto,
            thresholds=_parse_thresholds(r, thresholds, extra=("id",)),
            readiness=_parse_readiness(r, readiness or ReadinessConfig(), prefix="readiness_"),
        ))
    return tuple(parsed), DiscoveryConfig()


def _resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """Relative SQLite paths are relative to the config file, not to wherever we started."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:") and not rest.startswith("file:"):
            return prefix + str((base_dir / rest).resolve())
    return url


def _check_url_password(url: str, key: str) -> None:
    """An '@' in the password ends it early: the rest would be read as the host, and the
    database driver's error would print it. Refused, and nothing of the URL is shown."""
    # SQLAlchemy's own reading: the password runs to the first '@', the host to '/:?'.
    match = re.match(r"^[\w+]+://[^:/]*:[^@]*@([^/:?]*)", url)
    if match and "@" in match.group(1):
        raise ConfigError(key, "the password holds an '@' that is not percent-encoded; "
                               "write it as %40 (and '%' as %25), e.g. "
                               "postgresql+psycopg://USER:PA%40SS@HOST/DB")


# SQLAlchemy's drivers for PostgreSQL, and where each comes from.
_POSTGRES_DRIVERS = {
    "psycopg": "pip install 'drs-report[postgresql]'",
    "psycopg2": "pip install psycopg2-binary, or use postgresql+psycopg:// with "
                "pip install 'drs-report[postgresql]'",
    "pg8000": "pip install pg8000, or use postgresql+psycopg:// with "
              "pip install 'drs-report[postgresql]'",
}


def _check_store_url(url: str, key: str) -> str:
    """The mistakes SQLAlchemy would report in its own words, said with the fix."""
    match = re.match(r"^sqlite(\+\w+)?://([^/].*)$", url)
    if match:
        # sqlite://FILE reads FILE as a host: SQLAlchemy's "Invalid SQLite URL".
        scheme = url.split("://", 1)[0]
        raise ConfigError(key, f"{url!r} has two slashes; a SQLite file needs three: "
                               f"{scheme}:///{match.group(2)} (four for an absolute path)")
    match = re.match(r"^postgresql(?:\+(\w+))?://", url)
    if match is None:
        return url
    driver = match.group(1)
    if driver is None:
        # SQLAlchemy's default for postgresql:// is psycopg2; we ship psycopg 3.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        driver = "psycopg"
    if driver not in _POSTGRES_DRIVERS:
        raise ConfigError(key, f"unknown PostgreSQL driver {driver!r}; use "
                               "postgresql+psycopg://USER:PASSWORD@HOST/DB")
    try:
        __import__(driver)
    except ImportError:
        raise ConfigError(key, f"PostgreSQL needs the {driver} driver, which is not "
                               f"installed; {_POSTGRES_DRIVERS[driver]}") from None
    return url


def _parse_store(r: _Reader, base_dir: Path, *, region: str = "cn-north-4",
                 in_functiongraph: bool = False) -> StoreConfig:
    r.check_unknown(_SECTION_KEYS["store"])
    default_url = "sqlite:///history.db" if in_functiongraph else "sqlite:///drs-report.db"
    url = r.string("url", default_url)
    if not re.match(r"^(sqlite|postgresql)(\+[a-z0-9]+)?://", url):
        raise ConfigError(r.key("url"), "expected sqlite:///FILE or "
                                        "postgresql+psycopg://USER:PASSWORD@HOST/DB")
    _check_url_password(url, r.key("url"))
    url = _check_store_url(url, r.key("url"))
    sync = r.string("sync")
    ephemeral = r.boolean("ephemeral", False)
    sqlite = url.startswith("sqlite")
    if sync is not None:
        if not re.match(r"^obs://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*[^/]$", sync):
            raise ConfigError(r.key("sync"), f"{sync!r} is not obs://BUCKET/OBJECT_KEY (a "
                                             "bucket name of 3-63 lowercase letters, digits, "
                                             "'.' or '-', then the object key)")
        if not sqlite or ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite://"):
            raise ConfigError(r.key("sync"), "keeps an SQLite file in OBS; set store.url to "
                                             "sqlite:///FILE (the working copy) or remove "
                                             "store.sync")
    elif in_functiongraph and sqlite and not ephemeral:
        raise ConfigError(r.key("url"), "an SQLite file in FunctionGraph dies with the "
                                        "instance; set store.sync = \"obs://BUCKET/KEY\" to "
                                        "keep it in OBS, or a PostgreSQL URL, or "
                                        "store.ephemeral = true to accept losing history")
    endpoint = r.string("obs_endpoint") or f"https://obs.{region}.myhuaweicloud.com"
    if not re.match(r"^https?://[^\s/?#]+/?$", endpoint):
        raise ConfigError(r.key("obs_endpoint"), f"{endpoint!r} is not an http(s) URL with a "
                                                 "host; e.g. https://obs.cn-north-4."
                                                 "myhuaweicloud.com")
    return StoreConfig(
        url=_resolve_sqlite_url(url, base_dir),
        retention_days=r.number("retention_days", 90, minimum=1, integer=True),
        report_retention_days=r.number("report_retention_days", 30, minimum=1, integer=True),
        prune_batch_size=r.number("prune_batch_size", 5000, minimum=1, integer=True),
        sync=sync,
        obs_endpoint=endpoint.rstrip("/"),
        ephemeral=ephemeral,
    )


def _check_time_zone(value: str, key: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(key, f"unknown time zone {value!r}; use an IANA name such as "
                               "'UTC' or 'Asia/Shanghai'") from None
    return value


def check_output_dir(path: Path, key: str) -> None:
    """A directory, or a path one can be made at (its nearest existing parent a directory)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"is under the file {candidate}"
                raise ConfigError(key, f"{path} {where}; give a directory for the reports")
            return


def _check_templates(directory: Path, key: str) -> None:
    """Syntax errors in the user's templates, found before anything is fetched."""
    from jinja2 import Environment, TemplateSyntaxError

    parser = Environment(autoescape=True)
    for path in sorted(directory.rglob("*.j2")):
        name = path.relative_to(directory).as_posix()
        try:
            parser.parse(path.read_text(encoding="utf-8"), name=name, filename=str(path))
        except TemplateSyntaxError as e:
            message = " ".join(str(e.message or e).split()).rstrip(".")
            raise ConfigError(key, f"{name} line {e.lineno}: {message}; fix the template"
                              ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(key, f"cannot read {name}: {e}") from None


def _parse_report(r: _Reader, base_dir: Path, *, write_dir: Path | None = None
                  ) -> ReportConfig:
    r.check_unknown(_SECTION_KEYS["report"])
    templates = r.string("templates_dir")
    templates_dir = (base_dir / templates) if templates else None
    if templates_dir is not None and not templates_dir.is_dir():
        raise ConfigError(r.key("templates_dir"), f"{templates} is not a directory")
    if templates_dir is not None:
        _check_templates(templates_dir, r.key("templates_dir"))
    output_dir = (write_dir or base_dir) / r.string("output_dir", "reports/out")
    check_output_dir(output_dir, r.key("output_dir"))
    return ReportConfig(
        output_dir=output_dir,
        templates_dir=templates_dir,
        title=r.string("title"),
        trend_hours=r.number("trend_hours", 24.0, minimum=1),
        time_zone=_check_time_zone(r.string("time_zone", "UTC"), r.key("time_zone")),
    )


def _parse_delivery(r: _Reader) -> DeliveryConfig:
    r.check_unknown(_SECTION_KEYS["delivery"])
    earliest_text = r.string("digest_earliest")
    earliest = None
    if earliest_text is not None:
        match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", earliest_text)
        if not match:
            raise ConfigError(r.key("digest_earliest"),
                              f"expected a time like '08:00', got {earliest_text!r}")
        earliest = time(int(match.group(1)), int(match.group(2)))
    return DeliveryConfig(
        time_zone=_check_time_zone(r.string("time_zone", "UTC"), r.key("time_zone")),
        digest_earliest=earliest,
        alert_reminder_hours=r.number("alert_reminder_hours", 6.0, minimum=0),
        max_attempts=r.number("max_attempts", 3, minimum=1, integer=True),
    )


def _parse_run(r: _Reader) -> RunConfig:
    r.check_unknown(_SECTION_KEYS["run"])
    return RunConfig(
        safety_margin_seconds=r.number("safety_margin_seconds", 10.0, minimum=0),
        time_budget_seconds=r.number("time_budget_seconds", None, minimum=1),
    )


_HTTP_URL_RE = re.compile(r"^https?://[^\s/?#]+(:\d+)?(/[^\s?#]*)?$")
_WEB_SECRET_MIN = 16  # a bearer token or link key anyone could guess is no lock


def _parse_web(r: _Reader) -> WebConfig:
    r.check_unknown(_SECTION_KEYS["web"])

    def secret(name: str, *, minimum: int = 1) -> Secret | None:
        value = r.string(name)
        if value is None:
            return None
        if len(value) < minimum:
            raise ConfigError(r.key(name), f"is shorter than {minimum} characters; use a long "
                                           "random value, e.g. from `openssl rand -hex 32`")
        return Secret(value)

    def url(name: str, default: str | None) -> str | None:
        value = r.string(name, default)
        if value is not None and not _HTTP_URL_RE.match(value):
            raise ConfigError(r.key(name), f"{value!r} is not an http(s) URL; "
                                           "e.g. https://drs.example.com/report")
        return str(value).rstrip("/") if value else None

    base_url = url("base_url", None)
    link_secret = secret("link_secret", minimum=_WEB_SECRET_MIN)
    if base_url is not None and link_secret is None:
        raise ConfigError(r.key("link_secret"), "is required when web.base_url is set: the "
                                                "links in digests and alerts are signed with it")
    feishu_app_id = r.string("feishu_app_id")
    feishu_app_secret = secret("feishu_app_secret")
    feishu_token = secret("feishu_verification_token")
    feishu_key = secret("feishu_encrypt_key")
    if any(v is not None for v in (feishu_app_id, feishu_app_secret, feishu_token, feishu_key)):
        for name, value in (("feishu_app_id", feishu_app_id),
                            ("feishu_app_secret", feishu_app_secret),
                            ("feishu_verification_token", feishu_token)):
            if value is None:
                raise ConfigError(r.key(name), "is required for the Feishu bot; copy it from "
                                               "the app's Credentials and Event Subscriptions")
    if feishu_key is not None:
        import importlib.util

        if importlib.util.find_spec("cryptography") is None:
            raise ConfigError(r.key("feishu_encrypt_key"), "needs the cryptography package to "
                              "decrypt events; pip install 'drs-report[feishu]'")
    return WebConfig(
        base_url=base_url,
        token=secret("token", minimum=_WEB_SECRET_MIN),
        link_secret=link_secret,
        link_expiry_hours=r.number("link_expiry_hours", 168.0, minimum=0.1),
        slack_signing_secret=secret("slack_signing_secret"),
        dingtalk_secret=secret("dingtalk_secret"),
        feishu_app_id=feishu_app_id,
        feishu_app_secret=feishu_app_secret,
        feishu_verification_token=feishu_token,
        feishu_encrypt_key=feishu_key,
        feishu_api=url("feishu_api", "https://open.feishu.cn") or "https://open.feishu.cn",
        max_body_bytes=r.number("max_body_bytes", 65536, minimum=1024, integer=True),
        live_seconds=r.number("live_seconds", 2.0, minimum=0.1),
        page_size=r.number("page_size", 50, minimum=1, integer=True),
    )


# A channel type may register a validator that checks and normalises its own keys; it gets
# the options (strings already expanded) and the dotted key, and raises ConfigError.
ChannelValidator = Callable[[dict[str, Any], str], dict[str, Any]]


def _parse_channels(channels: Any, env: Mapping[str, str]) -> tuple[ChannelConfig, ...]:
    if not isinstance(channels, list):
        raise ConfigError("channels", "expected [[channels]] tables")
    parsed: list[ChannelConfig] = []
    names: set[str] = set()
    for i, item in enumerate(channels):
        r = _Reader(item, f"channels[{i}]", env)
        ctype = r.choice("type", CHANNEL_TYPES, "") if r.raw("type") else None
        if ctype is None:
            raise ConfigError(r.key("type"), f"is required; one of {', '.join(CHANNEL_TYPES)}")
        mode = r.choice("mode", CHANNEL_MODES, "digest")
        name = r.string("name", f"{ctype}-{i}")
        if name in names:
            raise ConfigError(r.key("name"), f"{name!r} is used by another channel; "
                                             "give each channel its own name")
        names.add(name)
        options: dict[str, Any] = {}
        for key in item:
            if key in ("type", "name", "mode"):
                continue
            value = _expand_deep(item[key], env, r.key(key))
            if key in SECRET_CHANNEL_KEYS:
                value = _wrap_secret(value)
            options[key] = value
        options = _validate_channel_options(ctype, options, r.path)
        parsed.append(ChannelConfig(index=i, type=ctype, name=name, mode=mode, options=options))
    return tuple(parsed)


def _expand_deep(value: Any, env: Mapping[str, str], key: str) -> Any:
    if isinstance(value, str):
        return expand_env(value, env, key)
    if isinstance(value, list):
        return [_expand_deep(v, env, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand_deep(v, env, f"{key}.{k}") for k, v in value.items()}
    return value


def _wrap_secret(value: Any) -> Any:
    if isinstance(value, str):
        return Secret(value)
    if isinstance(value, list):
        return [Secret(v) if isinstance(v, str) else v for v in value]
    return value


def _validate_channel_options(ctype: str, options: dict[str, Any], key: str) -> dict[str, Any]:
    """Each channel type's keys are declared in channel_options, below config and channels."""
    from drs_report.channel_options import validate_options

    return validate_options(ctype, options, key)
