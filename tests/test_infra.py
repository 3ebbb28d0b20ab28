"""The Terraform in infra/ parses, and its pieces are wired to each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parent.parent / "infra"


def _clean(value: Any) -> Any:
    """python-hcl2 8 keeps HCL's quotes around labels and strings; drop them."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@pytest.fixture(scope="module")
def terraform() -> dict[str, Any]:
    import hcl2

    merged: dict[str, Any] = {"resource": {}, "variable": {}, "output": {}}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as f:
            parsed = _clean(hcl2.load(f))
        for block in ("resource", "variable", "output"):
            for item in parsed.get(block, []):
                for name, body in item.items():
                    if block == "resource":
                        for label, attrs in body.items():
                            merged["resource"][f"{name}.{label}"] = attrs
                    else:
                        merged[block][name] = body
    return merged


def text(value: Any) -> str:
    return str(value)


def test_every_file_parses(terraform: dict[str, Any]) -> None:
    assert {"huaweicloud_fgs_function.drs_report", "huaweicloud_fgs_function_trigger.timer",
            "huaweicloud_identity_agency.drs_report",
            "huaweicloud_smn_topic.reports"} <= set(terraform["resource"])


def test_function_runs_the_handler_from_the_zip(terraform: dict[str, Any]) -> None:
    function = terraform["resource"]["huaweicloud_fgs_function.drs_report"]
    assert function["handler"] == "index.handler"
    assert function["code_type"] == "zip"
    assert "var.package_path" in text(function["func_code"])
    assert "var.runtime" in text(function["runtime"])
    assert "huaweicloud_identity_agency.drs_report.name" in text(function["agency"])
    assert "user_data" in function and "encrypted_user_data" in function
    assert "var.secrets" in text(function["encrypted_user_data"])


def test_timer_trigger_points_at_the_function(terraform: dict[str, Any]) -> None:
    trigger = terraform["resource"]["huaweicloud_fgs_function_trigger.timer"]
    assert trigger["type"] == "TIMER"
    assert "huaweicloud_fgs_function.drs_report.urn" in text(trigger["function_urn"])
    event = text(trigger["event_data"])
    for key in ("schedule_type", "schedule", "user_event"):
        assert key in event


def test_agency_is_read_only_on_drs(terraform: dict[str, Any]) -> None:
    agency = terraform["resource"]["huaweicloud_identity_agency.drs_report"]
    assert agency["delegated_service_name"] == "op_svc_cff"
    roles = text(agency["project_role"])
    assert "DRS ReadOnlyAccess" in roles
    assert "DRS FullAccess" not in roles and "DRS Administrator" not in roles


def test_variables_are_described_and_validated(terraform: dict[str, Any]) -> None:
    variables = terraform["variable"]
    for name, body in variables.items():
        assert body.get("description"), name
    for name in ("region", "runtime", "memory_size", "timeout", "schedule_type", "user_event"):
        assert "validation" in variables[name], name
    assert "Python3.12" in text(variables["runtime"]["validation"])
    assert variables["secrets"].get("sensitive") is True
    assert set(terraform["output"]) >= {"function_urn", "agency_name", "smn_topic_urn"}
