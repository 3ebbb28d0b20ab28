"""Property tests: whatever the file holds, the parser answers Settings or a ConfigError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drs_report.config import parse_settings
from drs_report.errors import ConfigError

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["${HOME}", "${NOPE}", "${X:-1}", "all", "auto", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=8,
)
KEYS = {
    "drs": ["region", "project_id", "endpoint", "language", "batch_size", "verify_tls"],
    "store": ["url", "retention_days"],
    "thresholds": ["delay_warn_seconds", "delay_crit_seconds", "stall_minutes"],
    "delivery": ["time_zone", "digest_earliest"],
    "report": ["trend_hours", "time_zone", "title"],
}
VALID_DRS = {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314"}
VALID_JOB = {"id": "9a470239-2308-4bb5-a6bc-1040402fjb21"}


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"drs": dict(VALID_DRS), "jobs": [dict(VALID_JOB)]}
    for section, keys in KEYS.items():
        table = data.setdefault(section, {})
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
            table[key] = draw(VALUES)
    if draw(st.booleans()):
        data["jobs"] = draw(st.one_of(VALUES, st.lists(
            st.fixed_dictionaries({"id": st.one_of(st.just(VALID_JOB["id"]), SCALARS)},
                                  optional={"compare_jobs": VALUES, "name": VALUES}),
            max_size=3)))
    if draw(st.booleans()):
        data["channels"] = draw(st.lists(
            st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["smtp", "slack", "x"]),
                                                     SCALARS)},
                                  optional={"mode": VALUES, "url": VALUES, "name": VALUES}),
            max_size=2))
    if draw(st.booleans()):
        data[draw(st.text(max_size=10))] = draw(VALUES)
    return data


@settings(max_examples=300, deadline=None)
@given(configs())
def test_parser_answers_settings_or_config_error(data: dict[str, Any]) -> None:
    try:
        parsed = parse_settings(data, {"HOME": "/home/dba"})
    except ConfigError as e:
        assert "\n" not in str(e)
        assert str(e).strip()
    else:
        assert parsed.drs.project_id == VALID_DRS["project_id"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_env_expansion_never_crashes(value: str) -> None:
    data = {"drs": dict(VALID_DRS), "jobs": [dict(VALID_JOB)], "report": {"title": value}}
    try:
        parsed = parse_settings(data, {"A": "x"})
    except ConfigError as e:
        assert "report.title" in str(e)
    else:
        assert parsed.report.title is None or isinstance(parsed.report.title, str)


def test_non_finite_numbers_are_rejected() -> None:
    for bad in (float("nan"), float("inf")):
        data = {"drs": dict(VALID_DRS), "jobs": [dict(VALID_JOB)],
                "thresholds": {"delay_warn_seconds": bad}}
        try:
            parse_settings(data, {})
        except ConfigError as e:
            assert e.key == "thresholds.delay_warn_seconds"
        else:
            raise AssertionError(f"{bad} was accepted")
