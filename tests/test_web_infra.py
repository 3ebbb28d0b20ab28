"""infra/apig.tf: every argument is one the pinned provider schema knows, and it is wired."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.test_infra import _clean

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_NAMES = ("huaweicloud-1.97.1.schema.json",)


def _schema() -> dict[str, Any]:
    for base in (ROOT / "tests" / "data",):
        for name in SCHEMA_NAMES:
            if (base / name).is_file():
                data: dict[str, Any] = json.loads((base / name).read_text())
                return data
    if os.environ.get("DRS_REPORT_CI"):
        pytest.fail("the provider schema huaweicloud-1.97.1.schema.json is not beside the project")
    pytest.skip("the provider schema huaweicloud-1.97.1.schema.json is not beside the project")


@pytest.fixture(scope="module")
def apig() -> dict[str, Any]:
    import hcl2

    with (ROOT / "infra" / "apig.tf").open() as f:
        parsed: dict[str, Any] = _clean(hcl2.load(f))
    return parsed


def _check(body: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    meta = {"count", "for_each", "depends_on", "lifecycle", "provider"}
    for name, value in body.items():
        if name in meta:
            continue
        assert name in schema, f"{where}.{name} is not in the provider schema"
        spec = schema[name]
        if "block" in spec:
            for block in value if isinstance(value, list) else [value]:
                _check(block, spec["block"], f"{where}.{name}")
        else:
            assert not spec.get("computed") or spec.get("optional"), f"{where}.{name} is read-only"
    for name, spec in schema.items():
        if spec.get("required"):
            assert name in body, f"{where}.{name} is required"


def test_every_argument_is_in_the_provider_schema(apig: dict[str, Any]) -> None:
    resources = _schema()["resources"]
    seen = set()
    for item in apig["resource"]:
        for kind, named in item.items():
            for label, body in named.items():
                _check(body, resources[kind], f"{kind}.{label}")
                seen.add(kind)
    assert seen == {"huaweicloud_apig_group", "huaweicloud_apig_api",
                    "huaweicloud_apig_api_publishment"}


def test_the_api_sends_everything_to_the_function(apig: dict[str, Any]) -> None:
    api = next(i["huaweicloud_apig_api"]["drs_report"] for i in apig["resource"]
               if "huaweicloud_apig_api" in i)
    assert api["request_method"] == "ANY" and api["matching"] == "Prefix"
    assert api["request_path"] == "/" and api["is_send_fg_body_base64"] is True
    func = api["func_graph"][0] if isinstance(api["func_graph"], list) else api["func_graph"]
    assert "huaweicloud_fgs_function.drs_report.urn" in str(func["function_urn"])
    assert func["invocation_type"] == "sync"


def test_web_secrets_are_encrypted_settings(apig: dict[str, Any]) -> None:
    variables = {name: body for item in apig["variable"] for name, body in item.items()}
    for name, body in variables.items():
        assert body.get("description") and "validation" in body, name
    assert variables["web_secrets"]["sensitive"] is True
    main = (ROOT / "infra" / "main.tf").read_text()
    assert "encrypted_user_data = jsonencode(local.encrypted_user_data)" in main
    assert "local.web_secret_settings," in main
    locals_ = str(apig["locals"])
    assert "DRS_REPORT_WEB_" in locals_
