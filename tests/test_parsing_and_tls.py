"""Response parsers never raise (property tests); TLS is verified unless turned off."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drs_report.client import DrsClient
from drs_report.models import FetchErrorKind
from drs_report.parsing import (
    parse_compare_progress,
    parse_job_progress,
    parse_speed,
    to_float,
)
from tests.fixtures.emulator import canary_credentials, make_emulator, make_settings

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)
FIELDS = ["job_id", "progress", "incre_trans_delay", "incre_trans_delay_millis", "task_mode",
          "transfer_status", "process_time", "remaining_time", "progress_map", "error_code",
          "error_msg", "apply_rows_rate", "apply_bytes_rate"]


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({}, optional={f: JSON for f in FIELDS})))
def test_job_progress_parser_is_total(data: Any) -> None:
    parsed = parse_job_progress(data)
    assert isinstance(parsed.job_id, str)
    for name in ("progress", "incre_trans_delay"):
        value = getattr(parsed, name)
        assert value is None or isinstance(value, float)
    for name in ("incre_trans_delay_millis", "process_time", "remaining_time",
                 "apply_rows_rate", "apply_bytes_rate"):
        value = getattr(parsed, name)
        assert value is None or isinstance(value, int)
    assert parsed.raw == (data if isinstance(data, dict) else {})


@settings(max_examples=400, deadline=None)
@given(st.one_of(JSON, st.fixed_dictionaries({}, optional={
    "full_info": JSON, "incre_info": JSON, "global_info": JSON})))
def test_compare_progress_parser_is_total(data: Any) -> None:
    parsed = parse_compare_progress(data)
    assert parsed.recheck_entities is None or isinstance(parsed.recheck_entities, int)


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_numeric_strings_round_trip(number: float) -> None:
    assert to_float(repr(number)) == number
    assert to_float(f"{number}%") == number
    assert to_float(json.dumps(number)) == number


@given(st.text(max_size=30))
def test_speed_parser_is_total(text: str) -> None:
    value = parse_speed(text)
    assert value is None or value >= 0


def test_speeds_and_empty_values() -> None:
    assert parse_speed("12.40MB/s") == pytest.approx(12.4 * 1024 * 1024)
    assert parse_speed("0.00B/s") == 0.0
    assert parse_speed("1.2 KB/s") == pytest.approx(1228.8)
    assert parse_speed("3GB/s") == 3 * 1024**3
    assert parse_speed("fast") is None
    assert to_float("") is None and to_float("  ") is None and to_float(True) is None
    parsed = parse_job_progress({"job_id": "x", "progress": "", "remaining_time": "n/a",
                                 "brand_new_field": {"a": 1}})
    assert parsed.progress is None and parsed.remaining_time is None
    assert parsed.raw["brand_new_field"] == {"a": 1}


@pytest.fixture(scope="module")
def https_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return context, str(bundle)


def test_tls_is_verified_by_default(https_material: tuple[ssl.SSLContext, str],
                                    caplog: pytest.LogCaptureFixture) -> None:
    context, bundle = https_material
    with make_emulator(ssl_context=context) as emu:
        assert emu.url.startswith("https://")
        # An unknown certificate is refused...
        default = make_settings(emu, drs={"max_retries": 0})
        with DrsClient(default.drs, canary_credentials()) as client:
            refused = client.fetch(default.jobs[:1], default.discovery)
        error = refused.jobs[0].error
        assert error is not None and error.kind is FetchErrorKind.NETWORK
        # ...the right CA bundle is accepted...
        trusted = make_settings(emu, drs={"ca_bundle": bundle})
        with DrsClient(trusted.drs, canary_credentials()) as client:
            assert client.fetch(trusted.jobs[:1], trusted.discovery).jobs[0].error is None
        # ...and turning verification off works only explicitly, with a warning.
        off = make_settings(emu, drs={"verify_tls": False})
        with caplog.at_level("WARNING", logger="drs_report"), \
                DrsClient(off.drs, canary_credentials()) as client:
            assert client.fetch(off.jobs[:1], off.discovery).jobs[0].error is None
    assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)
    assert Path(bundle).is_file()
