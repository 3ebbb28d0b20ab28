"""The Terraform in infra/: every argument checked against the provider's own schema, every
limit rejected by `terraform plan`, and the pieces wired to each other.

The schema (huaweicloud 1.97.1, `terraform providers schema -json`, descriptions left out)
is kept in tests/data/ (or DRS_REPORT_TF_SCHEMA names another copy).
Providers cannot be downloaded here, so the validations are planned on variables.tf alone,
which needs none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}


def _require(what: str, found: bool) -> None:
    if not found and what == "terraform" and os.environ.get("DRS_REPORT_NO_TERRAFORM"):
        pytest.skip("terraform is not installed (.ci/run said so)")
    if not found:
        if os.environ.get("DRS_REPORT_CI"):
            pytest.fail(f"{what} is missing; CI must have it")
        pytest.skip(f"{what} is missing")


def _schema_path() -> Path | None:
    named = os.environ.get("DRS_REPORT_TF_SCHEMA")
    candidates = [Path(named)] if named else []
    candidates.append(ROOT / "tests" / "data" / "huaweicloud-1.97.1.schema.json")
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    path = _schema_path()
    _require("the huaweicloud provider schema (tests/data/ or DRS_REPORT_TF_SCHEMA)",
             path is not None)
    assert path is not None
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    assert data["version"] == "1.97.1"
    return data


# ---------------------------------------------------------------------------------------
# The schema check


def _label(text: str) -> str:
    """python-hcl2 8 keeps HCL's quotes around labels and strings."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and v.get("__is_block__") for v in value)


def _computed_only(spec: dict[str, Any]) -> bool:
    return bool(spec.get("computed")) and not spec.get("optional") and not spec.get("required")


def check_body(body: dict[str, Any], schema: dict[str, Any], where: str, *,
               top: bool) -> list[str]:
    """Every problem of one resource/data body (or nested block) against its schema."""
    problems: list[str] = []
    present: set[str] = set()
    for name, value in body.items():
        if name.startswith("__") or (top and name in META_ARGUMENTS):
            continue
        if name == "dynamic" and isinstance(value, list):
            for dynamic in value:
                for label, inner in dynamic.items():
                    if label.startswith("__"):
                        continue
                    block_name = _label(label)
                    present.add(block_name)
                    spec = schema.get(block_name)
                    if spec is None or "block" not in spec:
                        problems.append(f"{where}: dynamic {block_name!r} is not a block of "
                                        "this resource")
                        continue
                    for content in inner.get("content", []):
                        problems += check_body(content, spec["block"],
                                               f"{where}.{block_name}", top=False)
            continue
        present.add(name)
        spec = schema.get(name)
        if spec is None:
            problems.append(f"{where}: unknown argument {name!r}")
            continue
        if spec.get("deprecated"):
            problems.append(f"{where}: {name!r} is deprecated")
        if "block" in spec:
            if not _is_block(value):
                problems.append(f"{where}: {name!r} is a block; write `{name} {{ ... }}`, "
                                f"not `{name} = ...`")
                continue
            if spec.get("max_items") is not None and len(value) > spec["max_items"]:
                problems.append(f"{where}: at most {spec['max_items']} {name!r} block(s)")
            for item in value:
                problems += check_body(item, spec["block"], f"{where}.{name}", top=False)
        elif _is_block(value):
            problems.append(f"{where}: {name!r} is an argument; write `{name} = ...`, "
                            "not a block")
        elif _computed_only(spec):
            problems.append(f"{where}: {name!r} is computed by the provider and cannot be set")
    for name, spec in schema.items():
        if name in present:
            continue
        if spec.get("required") or ("block" in spec and (spec.get("min_items") or 0) >= 1):
            problems.append(f"{where}: required {name!r} is missing")
    return problems


def check_file(text: str, schema: dict[str, Any], filename: str) -> list[str]:
    import hcl2

    parsed = hcl2.loads(text)
    problems: list[str] = []
    for kind, section in (("resource", "resources"), ("data", "data_sources")):
        for item in parsed.get(kind, []):
            for rtype, bodies in item.items():
                rtype = _label(rtype)
                for label, body in bodies.items():
                    if label.startswith("__"):
                        continue
                    where = f"{filename}: {kind} {rtype}.{_label(label)}"
                    known = schema[section].get(rtype)
                    if known is None:
                        problems.append(f"{where}: not a {section[:-1].replace('_', ' ')} of "
                                        f"huaweicloud {schema['version']} (or not in the "
                                        "schema's list of those this project may use)")
                        continue
                    problems += check_body(body, known, where, top=True)
    return problems


def _tf_files() -> list[Path]:
    files = sorted(INFRA.glob("*.tf"))
    assert files, "infra/ has no .tf files"
    return files


def test_every_resource_and_data_source_matches_the_provider_schema(
        schema: dict[str, Any]) -> None:
    problems: list[str] = []
    for path in _tf_files():
        problems += check_file(path.read_text("utf-8"), schema, path.name)
    assert problems == []


@pytest.mark.parametrize(("snippet", "expected"), [
    ('resource "huaweicloud_smn_topic" "t" {\n  name = "a"\n  colour = "red"\n}\n',
     "unknown argument 'colour'"),
    ('resource "huaweicloud_smn_topic" "t" {\n  display_name = "a"\n}\n',
     "required 'name' is missing"),
    ('resource "huaweicloud_fgs_function" "f" {\n  name = "a"\n  runtime = "Python3.12"\n'
     '  memory_size = 128\n  timeout = 3\n  package = "x"\n}\n', "'package' is deprecated"),
    ('resource "huaweicloud_vpc_eip" "e" {\n  publicip = { type = "5_bgp" }\n'
     '  bandwidth {\n    share_type = "PER"\n  }\n}\n', "'publicip' is a block"),
    ('resource "huaweicloud_vpc_eip" "e" {\n  bandwidth {\n    share_type = "PER"\n  }\n}\n',
     "required 'publicip' is missing"),
    ('resource "huaweicloud_vpc_eip" "e" {\n  publicip {\n    type = "5_bgp"\n  }\n'
     '  bandwidth {\n    size = 5\n  }\n}\n', "bandwidth: required 'share_type' is missing"),
    ('resource "huaweicloud_smn_topic" "t" {\n  name = "a"\n  tags {\n    a = "b"\n  }\n}\n',
     "'tags' is an argument"),
    ('resource "huaweicloud_smn_topic" "t" {\n  name = "a"\n  topic_urn = "x"\n}\n',
     "'topic_urn' is computed"),
    ('data "huaweicloud_fgs_runtime_types" "r" {\n  runtime = "x"\n}\n',
     "unknown argument 'runtime'"),
    ('resource "huaweicloud_no_such_thing" "x" {\n}\n', "not a resource"),
    ('resource "huaweicloud_obs_bucket" "b" {\n  bucket = "b"\n  dynamic "lifecycle_rule" {\n'
     '    for_each = [1]\n    content {\n      name = "r"\n    }\n  }\n}\n',
     "lifecycle_rule: required 'enabled' is missing"),
])
def test_the_schema_check_catches_each_kind_of_mistake(schema: dict[str, Any], snippet: str,
                                                       expected: str) -> None:
    problems = check_file(snippet, schema, "bad.tf")
    assert any(expected in p for p in problems), problems


def test_the_schema_check_accepts_meta_arguments_and_nested_blocks(
        schema: dict[str, Any]) -> None:
    snippet = '''resource "huaweicloud_vpc_eip" "e" {
  count = 1
  depends_on = []
  publicip {
    type = "5_bgp"
  }
  bandwidth {
    share_type = "PER"
  }
  lifecycle {
    precondition {
      condition     = true
      error_message = "x"
    }
  }
}
'''
    assert check_file(snippet, schema, "good.tf") == []


def check_references(texts: dict[str, str], schema: dict[str, Any]) -> list[str]:
    """Every var., local., resource and data reference names something declared, and every
    attribute read from a resource or data source is one the provider has: what `terraform
    validate` would catch, which needs the provider binary."""
    import re

    import hcl2

    declared: dict[str, set[str]] = {"var": set(), "local": set(), "resource": set(),
                                     "data": set()}
    for text in texts.values():
        parsed = hcl2.loads(text)
        for item in parsed.get("variable", []):
            declared["var"] |= {_label(k) for k in item if not k.startswith("__")}
        for item in parsed.get("locals", []):
            declared["local"] |= {k for k in item if not k.startswith("__")}
        for kind in ("resource", "data"):
            for item in parsed.get(kind, []):
                for rtype, bodies in item.items():
                    declared[kind] |= {f"{_label(rtype)}.{_label(label)}" for label in bodies
                                       if not label.startswith("__")}
    problems = []
    for name, text in texts.items():
        code = "\n".join(line for line in text.splitlines()
                         if not line.lstrip().startswith("#"))
        for kind, ref in re.findall(r"\b(var|local)\.([A-Za-z_][A-Za-z0-9_]*)", code):
            if ref not in declared[kind]:
                problems.append(f"{name}: {kind}.{ref} is not declared")
        pattern = (r"(?<![\w.\"])(data\.)?(huaweicloud_\w+)\.(\w+)(?:\[[^\]]*\])?"
                   r"(?:\.(\w+))?")
        for data, rtype, label, attr in re.findall(pattern, code):
            kind, section = ("data", "data_sources") if data else ("resource", "resources")
            if f"{rtype}.{label}" not in declared[kind]:
                problems.append(f"{name}: {data}{rtype}.{label} is not declared")
            elif attr and attr not in schema[section].get(rtype, {}):
                problems.append(f"{name}: {data}{rtype}.{label} has no attribute {attr!r}")
    return problems


def test_every_reference_is_declared_and_every_attribute_exists(
        schema: dict[str, Any]) -> None:
    texts = {p.name: p.read_text("utf-8") for p in _tf_files()}
    assert check_references(texts, schema) == []


def test_the_reference_check_catches_typos(schema: dict[str, Any]) -> None:
    bad = {"bad.tf": 'resource "huaweicloud_smn_topic" "t" {\n  name = var.nmae\n}\n'
                     'output "o" {\n  value = huaweicloud_smn_topic.t.topic_arn\n}\n'
                     'output "p" {\n  value = local.missing\n}\n'
                     'output "q" {\n  value = data.huaweicloud_vpc_subnet.s.cidr\n}\n'}
    problems = check_references(bad, schema)
    assert any("var.nmae is not declared" in p for p in problems), problems
    assert any("has no attribute 'topic_arn'" in p for p in problems), problems
    assert any("local.missing is not declared" in p for p in problems), problems
    assert any("data.huaweicloud_vpc_subnet.s is not declared" in p for p in problems)


# ---------------------------------------------------------------------------------------
# The validations, planned on variables.tf alone


def _tf_env() -> dict[str, str]:
    return dict(os.environ, TF_CLI_CONFIG_FILE=os.devnull, TF_IN_AUTOMATION="1",
                CHECKPOINT_DISABLE="1")


def plan_variables(tmp: Path, values: dict[str, Any], *, env: dict[str, str] | None = None,
                   tfvars: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`terraform plan` of variables.tf copied alone into a scratch directory."""
    terraform = shutil.which("terraform")
    _require("terraform", terraform is not None)
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INFRA / "variables.tf", tmp / "variables.tf")
    if tfvars is not None:
        shutil.copyfile(tfvars, tmp / "case.tfvars")
    else:
        (tmp / "case.tfvars.json").write_text(json.dumps({"region": "cn-north-4", **values}),
                                              encoding="utf-8")
    var_file = "case.tfvars" if tfvars is not None else "case.tfvars.json"
    return subprocess.run([str(terraform), "plan", "-input=false", "-no-color", "-lock=false",
                           f"-var-file={var_file}"], cwd=tmp, capture_output=True,
                          text=True, timeout=120, check=False, env={**_tf_env(), **(env or {})})


def _timer(**fields: Any) -> dict[str, Any]:
    return {"name": "alerts", "schedule_type": "Rate", "schedule": "10m", **fields}


def _many(n: int, size: int = 1) -> dict[str, str]:
    return {f"K{i}": "v" * size for i in range(n)}


# (variable values, words of the error message that must appear)
BAD = {
    "function name over 60": ({"function_name": "f" * 61}, "at most 57"),
    "function name ending in -": ({"function_name": "drs-report-"}, "not end with _ or -"),
    "function name ending in _": ({"function_name": "drs_report_"}, "not end with _ or -"),
    "function name starting with a digit": ({"function_name": "1drs"}, "start with a letter"),
    "agency name over 64": ({"function_name": "f" * 58}, "IAM's 64"),
    "timer name over 64": ({"timers": [_timer(name="t" * 65)]}, "at most 64"),
    "timer name not starting with a letter": ({"timers": [_timer(name="1alerts")]},
                                              "start with a letter"),
    "two timers of one name": ({"timers": [_timer(), _timer()]}, "must differ"),
    "rate 90m": ({"timers": [_timer(schedule="90m")]}, "1m-60m, 1h-24h or 1d-30d"),
    "rate 10min": ({"timers": [_timer(schedule="10min")]}, "1m-60m, 1h-24h or 1d-30d"),
    "rate 0m": ({"timers": [_timer(schedule="0m")]}, "1m-60m"),
    "rate 25h": ({"timers": [_timer(schedule="25h")]}, "1h-24h"),
    "rate 31d": ({"timers": [_timer(schedule="31d")]}, "1d-30d"),
    "schedule type": ({"timers": [_timer(schedule_type="Interval")]}, "Rate or Cron"),
    "cron of 4 fields": ({"timers": [_timer(schedule_type="Cron", schedule="0 8 * *")]},
                         "6 fields with seconds"),
    "cron with its own CRON_TZ": ({"timers": [_timer(
        schedule_type="Cron", schedule="CRON_TZ=Asia/Shanghai 0 0 8 * * ?")]}, "time_zone"),
    "user_event an array": ({"timers": [_timer(user_event="[1]")]}, "JSON object"),
    "user_event a string": ({"timers": [_timer(user_event='"alert"')]}, "JSON object"),
    "user_event not JSON": ({"timers": [_timer(user_event="{mode: alert}")]}, "JSON object"),
    "user_event unknown override": ({"timers": [_timer(user_event='{"mood": "alert"}')]},
                                    "mode, modes, jobs, force and dry_run"),
    "user_event over 2 KB": ({"timers": [_timer(
        user_event=json.dumps({"jobs": ["j" * 2100]}))]}, "2 KB"),
    "user_event over 2 KB in bytes": ({"timers": [_timer(
        user_event=json.dumps({"jobs": ["数" * 700]}, ensure_ascii=False))]}, "2 KB"),
    "no timers": ({"timers": []}, "1 to 10"),
    "time zone": ({"time_zone": "China Standard Time"}, "IANA name"),
    "user data over 4 KB": ({"settings": {"BIG": "x" * 4100}}, "3 KB"),
    "user data over 20 keys": ({"settings": _many(21)}, "at most 16 keys"),
    "user data key with -": ({"settings": {"SMTP-USER": "a"}}, "no -"),
    "encrypted user data over 4 KB": ({"secrets": {"BIG": "x" * 4100}}, "3.5 KB"),
    "encrypted user data over 20 keys": ({"secrets": _many(20)}, "at most 19 keys"),
    "encrypted user data key with -": ({"secrets": {"SMTP-PASSWORD": "a"}}, "no -"),
    "memory 100": ({"memory_size": 100}, "memory_size must be one of"),
    "memory 1000": ({"memory_size": 1000}, "memory_size must be one of"),
    "memory 8192": ({"memory_size": 8192}, "memory_size must be one of"),
    "runtime 3.9": ({"runtime": "Python3.9"}, "Python3.12 or Python3.10"),
    "timeout 2": ({"timeout": 2}, "from 3 to 900"),
    "timeout 901": ({"timeout": 901}, "from 3 to 900"),
    "region": ({"region": "North China 4"}, "cn-north-4"),
    "max instances 0": ({"max_instance_num": 0}, "0 would disable"),
    "max instances 1001": ({"max_instance_num": 1001}, "1 to 1000"),
    "retries 4": ({"max_async_retry_attempts": 4}, "0, 1, 2 or 3"),
    "event age 0": ({"max_async_event_age_seconds": 0}, "from 1 to 86400"),
    "event age 86401": ({"max_async_event_age_seconds": 86401}, "from 1 to 86400"),
    "bucket name": ({"store_bucket": "My_Bucket"}, "3-63 lowercase"),
    "bucket like an IP": ({"store_bucket": "192.168.1.1"}, "IP address"),
    "object key": ({"store_object_key": "/history.db"}, "no leading"),
    "vpc id": ({"vpc_id": "vpc-1"}, "VPC ID"),
    "subnet id": ({"subnet_id": "subnet-1"}, "subnet ID"),
    "nat spec": ({"nat_gateway_spec": "5"}, "1, 2, 3 or 4"),
    "rds user reserved": ({"rds_user": "root"}, "reserves"),
    "rds volume": ({"rds_volume_size": 45}, "steps of 10"),
    "smn protocol": ({"smn_subscriptions": [{"protocol": "ftp", "endpoint": "ftp://a"}]},
                     "email, sms, http or https"),
    "smn email endpoint": ({"smn_subscriptions": [{"protocol": "email", "endpoint": "dba"}]},
                           "email address"),
    "history store": ({"history_store": "sqlite"}, "obs, postgresql or ephemeral"),
    "log retention": ({"log_retention_days": 400}, "1 to 365"),
    "package path": ({"package_path": "drs-report.tar.gz"}, ".zip"),
    "drs projects empty": ({"drs_projects": []}, "at least one project"),
    "drs project not a project name": ({"drs_projects": ["North China 4"]}, "IAM project name"),
    "drs project upper case": ({"drs_projects": ["CN-NORTH-4"]}, "IAM project name"),
    "drs project with an empty subproject": ({"drs_projects": ["cn-north-4_"]},
                                             "IAM project name"),
    "drs project with a space": ({"drs_projects": ["cn-north-4_my project"]},
                                 "IAM project name"),
    "drs project over 64": ({"drs_projects": ["cn-north-4_" + "p" * 54]},
                            "at most 64 characters"),
    "drs project null": ({"drs_projects": ["cn-north-4", None]}, "IAM project name"),
    "drs project an ID": ({"drs_projects": ["5237e10fe9aa4ad5b16b6a5245248314"]},
                          "not project IDs"),
    "drs project twice": ({"drs_projects": ["cn-north-4", "cn-south-1", "cn-north-4"]},
                          "not list a project twice"),
}

GOOD = {
    "defaults": {},
    "function name of 57": {"function_name": "f" * 57},
    "function name of one letter": {"function_name": "f"},
    "timer name of 64": {"timers": [_timer(name="t" * 64)]},
    "rates at their limits": {"timers": [
        _timer(name=f"r{s}", schedule=s) for s in ("1m", "60m", "1h", "24h", "1d", "30d")]},
    "crons": {"timers": [
        _timer(name="six", schedule_type="Cron", schedule="0 0 8 * * ?"),
        _timer(name="five", schedule_type="Cron", schedule="0 8 * * MON-FRI"),
        _timer(name="every", schedule_type="Cron", schedule="@every 30m")]},
    "user_event of 2 KB": {"timers": [_timer(
        user_event=json.dumps({"jobs": ["j" * (2048 - len('{"jobs": [""]}'))]}))]},
    "user_event with every override": {"timers": [_timer(
        user_event='{"modes": ["alert"], "jobs": ["a"], "force": false, "dry_run": true}')]},
    "16 settings": {"settings": _many(16)},
    "19 secrets": {"secrets": _many(19)},
    "every memory size": {},  # each size is planned below
    "max instances unlimited": {"max_instance_num": -1},
    "max instances 1000": {"max_instance_num": 1000},
    "retries and age at their limits": {"max_async_retry_attempts": 3,
                                        "max_async_event_age_seconds": 86400},
    "a private network": {"vpc_id": "3b4c1a2e-1d2f-4e5a-8b9c-0d1e2f3a4b5c",
                          "subnet_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f",
                          "create_rds": True, "history_store": "postgresql",
                          "rds_availability_zones": ["cn-north-4a"],
                          "rds_password": "Drs-Report-2026", "rds_admin_password": "Root_Pw_2026x"},
    "smn subscribers": {"create_smn_topic": True, "smn_subscriptions": [
        {"protocol": "email", "endpoint": "dba@example.com"},
        {"protocol": "sms", "endpoint": "+8613800000000"},
        {"protocol": "https", "endpoint": "https://hooks.example.com/smn"}]},
    "a bucket and time zone": {"store_bucket": "my-team.drs-report-history",
                               "time_zone": "Asia/Shanghai"},
    "drs projects in regions and subprojects": {"drs_projects": [
        "cn-north-4", "cn-north-4_prod-2", "ap-southeast-1", "cn-south-1_bu_Finance"]},
    "drs project of 64": {"drs_projects": ["cn-north-4_" + "p" * 53]},
    "drs projects without the function's own": {"drs_projects": ["cn-south-1"]},
}
MEMORY_SIZES = (128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096)


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case planned once, two at a time (terraform takes ~0.1 s each)."""
    base = tmp_path_factory.mktemp("plans")
    cases: dict[str, dict[str, Any]] = {f"bad: {k}": v[0] for k, v in BAD.items()}
    cases.update({f"good: {k}": v for k, v in GOOD.items()})
    cases.update({f"good: memory {m}": {"memory_size": m} for m in MEMORY_SIZES})

    def run(item: tuple[int, tuple[str, dict[str, Any]]]) -> tuple[str, Any]:
        i, (name, values) = item
        return name, plan_variables(base / str(i), values)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, enumerate(cases.items())))


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_fails_at_plan_naming_the_limit(planned: dict[str, Any], case: str) -> None:
    proc = planned[f"bad: {case}"]
    output = _flat(proc.stdout + proc.stderr)
    assert proc.returncode != 0, output
    assert "Invalid value for variable" in output, output
    assert _flat(BAD[case][1]) in output, output


@pytest.mark.parametrize("case", sorted(GOOD) + [f"memory {m}" for m in MEMORY_SIZES])
def test_a_good_edge_value_passes_plan(planned: dict[str, Any], case: str) -> None:
    proc = planned[f"good: {case}"]
    assert proc.returncode == 0, _flat(proc.stdout + proc.stderr)


def test_a_plan_error_does_not_echo_a_secret(tmp_path: Path) -> None:
    """Terraform prints a failing string variable's value, sensitive or not: the password
    rules are preconditions (which print none), and map validations print no values."""
    canary = "canary-pw-must-never-leak"
    env = {"TF_VAR_rds_password": canary, "TF_VAR_rds_admin_password": canary,
           "TF_VAR_secrets": json.dumps({"SMTP-PASSWORD": canary})}
    proc = plan_variables(tmp_path, {}, env=env)
    assert proc.returncode != 0
    assert "secrets keys must start with a letter" in _flat(proc.stderr)
    assert canary not in proc.stdout + proc.stderr


def test_the_rds_password_rules_are_preconditions(terraform: dict[str, Any]) -> None:
    rds = terraform["resource"]["huaweicloud_rds_instance.history"]
    account = terraform["resource"]["huaweicloud_rds_pg_account.drs_report"]
    assert "local.rds_admin_password_ok" in text(rds["lifecycle"])
    assert "local.rds_password_ok" in text(account["lifecycle"])
    assert "at least three" in text(account["lifecycle"])
    assert "validation" not in terraform["variable"]["rds_password"]


# ---------------------------------------------------------------------------------------
# The wiring


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _label(value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@pytest.fixture(scope="module")
def terraform() -> dict[str, Any]:
    import hcl2

    merged: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {},
                              "locals": {}}
    for path in _tf_files():
        parsed = _clean(hcl2.loads(path.read_text("utf-8")))
        for item in parsed.get("locals", []):
            merged["locals"].update(item)
        for block in ("resource", "data", "variable", "output"):
            for item in parsed.get(block, []):
                for name, body in item.items():
                    if block in ("resource", "data"):
                        for label, attrs in body.items():
                            merged[block][f"{name}.{label}"] = attrs
                    else:
                        merged[block][name] = body
    return merged


def text(value: Any) -> str:
    return json.dumps(value)


def test_function_runs_the_handler_from_the_zip(terraform: dict[str, Any]) -> None:
    function = terraform["resource"]["huaweicloud_fgs_function.drs_report"]
    assert function["handler"] == "index.handler"
    assert function["code_type"] == "zip"
    assert "var.package_path" in text(function["func_code"])
    assert "var.runtime" in text(function["runtime"])
    assert "huaweicloud_identity_agency.drs_report.name" in text(function["agency"])
    assert "local.encrypted_user_data" in text(function["encrypted_user_data"])
    assert "var.secrets" in text(terraform["locals"]["encrypted_user_data"])
    assert function["enable_lts_log"] is True
    assert "huaweicloud_lts_stream.drs_report.id" in text(function["log_stream_id"])


def test_plan_fails_when_the_region_lacks_the_runtime(terraform: dict[str, Any]) -> None:
    function = terraform["resource"]["huaweicloud_fgs_function.drs_report"]
    checks = function["lifecycle"][0]["precondition"]
    runtime = [c for c in checks if "huaweicloud_fgs_runtime_types" in text(c["condition"])]
    assert runtime and "var.runtime" in text(runtime[0]["condition"])
    assert "--python 3.10" in runtime[0]["error_message"]
    assert "huaweicloud_fgs_runtime_types.offered" in terraform["data"]


def test_one_instance_and_an_explicit_retry_policy(terraform: dict[str, Any]) -> None:
    function = terraform["resource"]["huaweicloud_fgs_function.drs_report"]
    assert "var.max_instance_num" in text(function["max_instance_num"])
    assert terraform["variable"]["max_instance_num"]["default"] == 1
    checks = text(function["lifecycle"][0]["precondition"])
    assert "local.use_obs" in checks and "var.max_instance_num == 1" in checks
    retry = terraform["resource"]["huaweicloud_fgs_async_invoke_configuration.drs_report"]
    assert "huaweicloud_fgs_function.drs_report.urn" in text(retry["function_urn"])
    assert "var.max_async_retry_attempts" in text(retry["max_async_retry_attempts"])
    assert "var.max_async_event_age_seconds" in text(retry["max_async_event_age_in_seconds"])


def test_timers_are_a_list_defaulting_to_alerts_and_a_morning_digest(
        terraform: dict[str, Any]) -> None:
    trigger = terraform["resource"]["huaweicloud_fgs_function_trigger.timer"]
    assert trigger["type"] == "TIMER"
    assert "var.timers" in text(trigger["for_each"])
    assert "huaweicloud_fgs_function.drs_report.urn" in text(trigger["function_urn"])
    event = text(trigger["event_data"])
    assert "CRON_TZ=${var.time_zone}" in event
    for key in ("schedule_type", "schedule", "user_event"):
        assert key in event
    default = terraform["variable"]["timers"]["default"]
    # python-hcl2 keeps HCL's escapes inside strings.
    assert [(t["schedule_type"], t["schedule"], json.loads(t["user_event"].replace('\\"', '"')))
            for t in default] \
        == [("Rate", "10m", {"mode": "alert"}), ("Cron", "0 0 8 * * ?", {"mode": "digest"})]


def test_agency_is_read_only_on_drs_and_limited_elsewhere(terraform: dict[str, Any]) -> None:
    agency = terraform["resource"]["huaweicloud_identity_agency.drs_report"]
    assert agency["delegated_service_name"] == "op_svc_cff"
    roles = text(terraform["locals"]["project_roles"])
    assert "DRS ReadOnlyAccess" in roles
    everything = text(terraform)
    for broad in ("DRS FullAccess", "DRS Administrator", "SMN FullAccess", "OBS FullAccess",
                  "OBS OperateAccess", "VPC Administrator", "Tenant Administrator"):
        assert broad not in everything, broad
    objects = terraform["resource"]["huaweicloud_identity_role.store_objects"]
    policy = text(objects["policy"])
    assert "OBS:*:*:object:${var.store_bucket}/${var.store_object_key}*" in policy
    assert "obs:*" not in policy and '"*"' not in policy
    smn = text(terraform["resource"]["huaweicloud_identity_role.smn_publish"]["policy"])
    assert "smn:topic:publish" in smn and "smn:*" not in smn
    vpc = text(terraform["resource"]["huaweicloud_identity_role.vpc_access"]["policy"])
    assert "vpc:ports:create" in vpc and "vpc:*" not in vpc


def test_the_agency_is_granted_in_each_of_drs_projects(terraform: dict[str, Any]) -> None:
    agency = terraform["resource"]["huaweicloud_identity_agency.drs_report"]
    assert "project_role" not in agency  # no fixed block for the function's region only
    (dynamic,) = [d["project_role"] for d in agency["dynamic"] if "project_role" in d]
    assert dynamic["for_each"] == "${local.agency_project_roles}"
    assert dynamic["content"][0]["project"] == "${project_role.key}"
    assert dynamic["content"][0]["roles"] == "${project_role.value}"
    assert "var.drs_projects" in text(terraform["locals"]["drs_projects"])
    assert "default" in terraform["variable"]["drs_projects"]
    assert terraform["variable"]["drs_projects"]["default"] is None
    assert terraform["output"]["drs_projects"]["value"] == "${local.drs_projects}"


def agency_grants(tmp: Path, terraform: dict[str, Any], values: dict[str, Any]) -> Any:
    """The agency's project roles as Terraform computes them: the locals they rest on,
    copied from infra/ with the custom roles' names standing in for the resources, evaluated
    by `terraform console` beside variables.tf (no provider needed)."""
    import re

    terraform_bin = shutil.which("terraform")
    _require("terraform", terraform_bin is not None)
    locals_ = terraform["locals"]
    wanted, queue = set(), ["agency_project_roles"]
    while queue:
        name = queue.pop()
        if name not in wanted:
            wanted.add(name)
            queue += re.findall(r"\blocal\.(\w+)", locals_[name])
    body = []
    for name in sorted(wanted):
        expr = locals_[name]
        assert expr.startswith("${") and expr.endswith("}"), expr
        expr = re.sub(r"\bhuaweicloud_identity_role\.(\w+)\[0\]\.name", r'"\1"', expr[2:-1])
        assert "huaweicloud_" not in expr, expr
        body.append(f"  {name} = {expr}")
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INFRA / "variables.tf", tmp / "variables.tf")
    (tmp / "grants.tf").write_text("locals {\n" + "\n".join(body) + "\n}\n", encoding="utf-8")
    (tmp / "case.tfvars.json").write_text(json.dumps({"region": "cn-north-4", **values}),
                                          encoding="utf-8")
    proc = subprocess.run([str(terraform_bin), "console", "-var-file=case.tfvars.json"],
                          cwd=tmp, input="jsonencode(local.agency_project_roles)\n",
                          capture_output=True, text=True, timeout=120, check=False,
                          env=_tf_env())
    assert proc.returncode == 0, _flat(proc.stdout + proc.stderr)
    return json.loads(json.loads(proc.stdout))


VPC = {"vpc_id": "3b4c1a2e-1d2f-4e5a-8b9c-0d1e2f3a4b5c",
       "subnet_id": "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"}


@pytest.mark.parametrize(("values", "grants"), [
    ({}, {"cn-north-4": ["DRS ReadOnlyAccess"]}),
    ({"create_smn_topic": True, **VPC},
     {"cn-north-4": ["DRS ReadOnlyAccess", "vpc_access", "smn_publish"]}),
    ({"drs_projects": ["cn-north-4", "cn-north-4_prod", "cn-south-1"],
      "create_smn_topic": True},
     {"cn-north-4": ["DRS ReadOnlyAccess", "smn_publish"],
      "cn-north-4_prod": ["DRS ReadOnlyAccess"], "cn-south-1": ["DRS ReadOnlyAccess"]}),
    # Jobs elsewhere only: the function's own project keeps its VPC role, not DRS ...
    ({"drs_projects": ["ap-southeast-1"], **VPC},
     {"cn-north-4": ["vpc_access"], "ap-southeast-1": ["DRS ReadOnlyAccess"]}),
    # ... and has no project role at all when it needs none.
    ({"drs_projects": ["ap-southeast-1", "cn-south-1_bu"]},
     {"ap-southeast-1": ["DRS ReadOnlyAccess"], "cn-south-1_bu": ["DRS ReadOnlyAccess"]}),
], ids=["default", "own project with VPC and SMN", "three projects in two regions",
        "elsewhere only, on a VPC", "elsewhere only"])
def test_drs_projects_decide_where_the_agency_reads_drs(
        tmp_path: Path, terraform: dict[str, Any], values: dict[str, Any],
        grants: dict[str, list[str]]) -> None:
    assert agency_grants(tmp_path, terraform, values) == grants


def test_the_history_bucket_is_private_versioned_and_wired(terraform: dict[str, Any]) -> None:
    bucket = terraform["resource"]["huaweicloud_obs_bucket.store"]
    assert bucket["acl"] == "private"
    assert bucket["versioning"] is True
    rule = bucket["lifecycle_rule"][0]
    assert rule["enabled"] is True
    assert "var.store_version_days" in text(rule["noncurrent_version_expiration"])
    bpa = terraform["resource"]["huaweicloud_obs_bucket_bpa.store"]
    assert all(bpa[k] is True for k in ("block_public_acls", "ignore_public_acls",
                                         "block_public_policy", "restrict_public_buckets"))
    settings = text(terraform["locals"]["module_settings"])
    assert "DRS_REPORT_STORE_SYNC" in settings and "local.store_url" in settings
    assert terraform["locals"]["store_url"] == "obs://${var.store_bucket}/${var.store_object_key}"
    assert "sqlite:////tmp/" in terraform["locals"]["working_db"]


def test_private_postgresql_reaches_the_function_as_a_secret(terraform: dict[str, Any]) -> None:
    function = terraform["resource"]["huaweicloud_fgs_function.drs_report"]
    assert "var.vpc_id" in text(function["vpc_id"])
    assert "var.subnet_id" in text(function["network_id"])
    assert "huaweicloud_nat_snat_rule.egress" in text(function["depends_on"])
    snat = terraform["resource"]["huaweicloud_nat_snat_rule.egress"]
    assert "huaweicloud_vpc_eip.egress[0].id" in text(snat["floating_ip_id"])
    assert "huaweicloud_nat_gateway.egress[0].id" in text(snat["nat_gateway_id"])
    encrypted = text(terraform["locals"]["encrypted_user_data"])
    assert "DRS_REPORT_STORE_URL" in encrypted and "local.rds_url" in encrypted
    assert "DRS_REPORT_STORE_URL = local.rds_url" not in text(terraform["locals"]["user_data"])
    assert "urlencode(var.rds_password)" in text(terraform["locals"]["rds_url"])
    database = terraform["resource"]["huaweicloud_rds_pg_database.history"]
    assert "huaweicloud_rds_pg_account.drs_report[0].name" in text(database["owner"])
    rule = terraform["resource"]["huaweicloud_networking_secgroup_rule.rds_from_function"]
    assert rule["ports"] == "5432" and "cidr" in text(rule["remote_ip_prefix"])
    for name in ("rds_password", "rds_admin_password", "secrets"):
        assert terraform["variable"][name].get("sensitive") is True, name


def test_smn_topic_has_subscribers_and_reaches_the_function(terraform: dict[str, Any]) -> None:
    subscription = terraform["resource"]["huaweicloud_smn_subscription.reports"]
    assert "var.smn_subscriptions" in text(subscription["for_each"])
    assert "DRS_REPORT_SMN_TOPIC_URN" in text(terraform["locals"]["module_settings"])


def test_variables_are_described(terraform: dict[str, Any]) -> None:
    for name, body in terraform["variable"].items():
        assert body.get("description"), name
    assert set(terraform["output"]) >= {"function_urn", "agency_name", "smn_topic_urn",
                                        "trigger_ids", "history", "egress_ip"}


def test_the_provider_floor_is_the_checked_version() -> None:
    import hcl2

    parsed = hcl2.loads((INFRA / "versions.tf").read_text("utf-8"))
    required = parsed["terraform"][0]["required_providers"][0]["huaweicloud"]
    assert _label(required["version"]).startswith(">= 1.97.1")


def test_the_example_tfvars_plans(tmp_path: Path) -> None:
    """terraform.tfvars.example passes every validation (the user copies it first)."""
    proc = plan_variables(tmp_path, {}, tfvars=ROOT / "terraform.tfvars.example")
    assert proc.returncode == 0, _flat(proc.stdout + proc.stderr)
