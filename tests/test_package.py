"""`drs-report package`: the same bytes from any checkout, locked dependencies, bytecode the
target Python loads without its sources, a config checked at build time, and a zip that
runs a whole cycle in a bare interpreter from a read-only code directory.

The builds use pip (PyPI or its cache) and the target interpreters (python3.12 / python3.10
on PATH or pyenv); where one is missing those tests skip, and fail in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drs_report.emulator import Emulator
from drs_report.packaging import (
    REPORT_TEMPLATE_DIRS,
    RUNTIME_REQUIREMENTS,
    TARGET_PYTHONS,
    find_interpreter,
    read_lock,
    write_zip,
)
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID, make_emulator

ROOT = Path(__file__).resolve().parent.parent
SECRET_CANARY = "canary-smtp-pw-3e1f-drs-report-must-never-leak"


def _require_interpreter(python: str) -> Path:
    found = find_interpreter(python)
    if found is None:
        if os.environ.get("DRS_REPORT_CI"):
            pytest.fail(f"no Python {python} interpreter (python{python} or pyenv); CI needs it")
        pytest.skip(f"no Python {python} interpreter (python{python} or pyenv)")
    return found


def copy_checkout(target: Path) -> Path:
    """The repository's sources (no venv, no caches) somewhere else, with new mtimes."""
    ignore = shutil.ignore_patterns(".venv*", ".git", "__pycache__", "*.pyc", ".pytest_cache",
                                    ".mypy_cache", ".ruff_cache", ".hypothesis", "*.zip")
    shutil.copytree(ROOT, target, ignore=ignore, symlinks=True)
    return target


def package(checkout: Path, *args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`drs-report package` run from `checkout`'s sources, as a user there would."""
    return subprocess.run(
        [sys.executable, "-m", "drs_report", "package", *args], capture_output=True, text=True,
        timeout=900, check=False, cwd=cwd or checkout,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(checkout / "function")})


def function_config(emulator_jobs: list[dict[str, Any]]) -> str:
    """A function's config: literal jobs, everything machine-specific as ${NAME}s."""
    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = {json.dumps(j["compare_jobs"])}\n'
                   for j in emulator_jobs)
    return ('[drs]\nregion = "cn-north-4"\nendpoint = "${DRS_ENDPOINT}"\n\n' + jobs +
            '\n[store]\nurl = "${DRS_REPORT_STORE_URL}"\n'
            '\n[report]\noutput_dir = "${REPORT_DIR}"\n'
            '\n[[channels]]\ntype = "smtp"\nname = "dba-mail"\nhost = "${SMTP_HOST}"\n'
            'port = "${SMTP_PORT}"\nsecurity = "none"\nusername = "${SMTP_USER}"\n'
            'password = "${SMTP_PASSWORD}"\nfrom = "drs-report@example.com"\n'
            'to = ["dba@example.com"]\n')


@pytest.fixture(scope="module")
def emulator_jobs() -> list[dict[str, Any]]:
    with make_emulator() as emu:
        jobs: list[dict[str, Any]] = emu.jobs_config()
    return jobs


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory,
           emulator_jobs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The 3.12 zip built twice, from two checkouts in different places, and the 3.10 zip."""
    _require_interpreter("3.12")
    base = tmp_path_factory.mktemp("builds")
    first = copy_checkout(base / "checkout-one")
    second = copy_checkout(base / "somewhere" / "else" / "checkout-two")
    (first / "config.toml").write_text(function_config(emulator_jobs), encoding="utf-8")
    shutil.copyfile(first / "config.toml", second / "config.toml")
    os.utime(second / "function" / "index.py", (1_900_000_000, 1_900_000_000))
    results: dict[str, Any] = {}
    for name, checkout, python in (("one", first, "3.12"), ("two", second, "3.12"),
                                   ("py310", first, "3.10")):
        output = checkout / "out" / f"drs-report-{name}.zip"
        # A canary secret in the build's environment must not reach the zip or the output.
        proc = package(checkout, "--python", python, "--config", "config.toml",
                       "--output", str(output), env={"SMTP_PASSWORD": SECRET_CANARY})
        assert proc.returncode == 0, proc.stderr
        results[name] = {"zip": output, "stdout": proc.stdout, "stderr": proc.stderr}
    yield results


def test_two_builds_from_different_directories_are_the_same_bytes(
        builds: dict[str, Any]) -> None:
    one, two = builds["one"]["zip"].read_bytes(), builds["two"]["zip"].read_bytes()
    assert hashlib.sha256(one).hexdigest() == hashlib.sha256(two).hexdigest()


def test_the_zip_is_sorted_dated_1980_and_has_no_console_scripts(builds: dict[str, Any]) -> None:
    with zipfile.ZipFile(builds["one"]["zip"]) as archive:
        infos = archive.infolist()
        records = {i.filename: archive.read(i).decode() for i in infos
                   if i.filename.endswith(".dist-info/RECORD")}
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    assert {"index.py", "config.toml", "config.toml.sample", "drs_report/function.py",
            "drs_report/templates/html/report.html.j2", "drs_report/locales/zh-cn.json",
            "drs_report/store/migrations/versions/0001_initial.py"} <= set(names)
    assert not any(n.startswith("bin/") for n in names)
    assert not any(n.startswith("drs_report/locks/") for n in names)
    assert records and not any(re.search(r"^(\.\./|bin/)", text, re.M)
                               for text in records.values())
    assert "#!" not in "".join(records.values())
    # Terraform sends the zip inline, base64-encoded; FunctionGraph takes 50 MB that way.
    for build in ("one", "py310"):
        assert builds[build]["zip"].stat().st_size * 4 / 3 < 50 * 1000 * 1000


def test_the_zip_carries_the_locked_versions(builds: dict[str, Any]) -> None:
    for name, python in (("one", "3.12"), ("py310", "3.10")):
        with zipfile.ZipFile(builds[name]["zip"]) as archive:
            shipped = {m.group(1).lower().replace("_", "-"): m.group(2) for n in archive.namelist()
                       if (m := re.match(r"^([^/]+)-([^-/]+)\.dist-info/METADATA$", n))}
        locked = {p.name.lower().replace("_", "-"): p.version for p in read_lock(python)}
        assert shipped == locked, python
    with zipfile.ZipFile(builds["py310"]["zip"]) as archive:
        assert any(n.startswith("sqlalchemy-2.0.") for n in archive.namelist())
        assert any(n.startswith("tomli/") for n in archive.namelist())


def test_every_module_has_unchecked_hash_bytecode_for_its_python(builds: dict[str, Any]) -> None:
    for name, tag in (("one", "cpython-312"), ("py310", "cpython-310")):
        interpreter = _require_interpreter(tag[-3] + "." + tag[-2:])
        magic = subprocess.run([str(interpreter), "-c", "import importlib.util, sys; "
                                "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"],
                               capture_output=True, text=True, check=True).stdout
        with zipfile.ZipFile(builds[name]["zip"]) as archive:
            names = set(archive.namelist())
            sources = [n for n in names if n.endswith(".py")]
            missing = [n for n in sources if _pyc(n, tag) not in names]
            headers = {archive.read(_pyc(n, tag))[:8] for n in sources if _pyc(n, tag) in names}
        assert missing == [], missing[:10]
        # PEP 552: the flags word 0b01 is "hash-based, do not check the source".
        assert headers == {bytes.fromhex(magic) + (1).to_bytes(4, "little")}, name


def _pyc(source: str, tag: str) -> str:
    folder, _, file = source.rpartition("/")
    return f"{folder + '/' if folder else ''}__pycache__/{file[:-3]}.{tag}.pyc"


def test_the_build_lists_each_name_and_where_it_must_come_from(builds: dict[str, Any]) -> None:
    out = builds["one"]["stdout"]
    assert "config.toml: valid (10 job(s), 1 channel(s)); packed as config.toml" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ${")}
    assert set(lines) == {"${DRS_ENDPOINT}", "${DRS_REPORT_STORE_URL}", "${REPORT_DIR}",
                          "${SMTP_HOST}", "${SMTP_PORT}", "${SMTP_USER}", "${SMTP_PASSWORD}"}
    assert "encrypted user data" in lines["${SMTP_PASSWORD}"]
    assert "channels[0].password" in lines["${SMTP_PASSWORD}"]
    assert "encrypted user data" in lines["${DRS_REPORT_STORE_URL}"]
    assert "user data (Terraform: settings)" in lines["${SMTP_HOST}"]
    assert "encrypted" not in lines["${SMTP_USER}"]
    everything = "".join(b["stdout"] + b["stderr"] for b in builds.values())
    assert SECRET_CANARY not in everything
    with zipfile.ZipFile(builds["one"]["zip"]) as archive:
        assert SECRET_CANARY.encode() not in archive.read("config.toml")


def _run_from_read_only_code(zip_path: Path, interpreter: Path, tmp_path: Path,
                             emulator: Emulator, *, poison_sources: bool) -> dict[str, Any]:
    code_dir = tmp_path / "code"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(code_dir)
    if poison_sources:
        # With unchecked-hash bytecode the interpreter never reads these sources again, and
        # with the compiled templates Jinja never reads the shipped ones.
        for module in ("sqlalchemy/__init__.py", "jinja2/__init__.py",
                       "drs_report/pipeline.py", "huaweicloudsdkcore/auth/credentials.py"):
            (code_dir / module).write_text("raise ImportError('the source was read')\n")
        for template in (code_dir / "drs_report" / "templates").rglob("*.j2"):
            template.write_text("{% the template source was read")
    for path in [code_dir, *code_dir.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = sorted(code_dir.rglob("*"))
    user_data = {"DRS_ENDPOINT": emulator.url, "REPORT_DIR": str(tmp_path / "out"),
                 "DRS_REPORT_STORE_URL": f"sqlite:///{tmp_path / 'history.db'}",
                 "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9", "SMTP_USER": "u",
                 "SMTP_PASSWORD": SECRET_CANARY}
    script = f"""
import json, sys
sys.path.insert(0, {str(code_dir)!r})
import index
class Context:
    def getRemainingTimeInMilliSeconds(self): return 30000
    def getSecurityAccessKey(self): return {CANARY_AK!r}
    def getSecuritySecretKey(self): return {CANARY_SK!r}
    def getSecurityToken(self): return {CANARY_TOKEN!r}
    def getUserData(self, key): return {user_data!r}.get(key, "")
    def getRequestID(self): return "zip-test"
summary = index.handler({{"version": "v1.0", "trigger_type": "TIMER",
                         "user_event": '{{"dry_run": true}}'}}, Context())
import sqlalchemy
ours = ({str(code_dir)!r}, sys.base_prefix)
outside = [m.__file__ for m in list(sys.modules.values())
           if getattr(m, "__file__", None) and not m.__file__.startswith(ours)]
print(json.dumps({{"summary": summary, "sqlalchemy": sqlalchemy.__version__,
                  "outside": outside}}))
"""
    # -I: no PYTHONPATH, no user site; -S: no site-packages; -B: no bytecode written, as
    # FunctionGraph's read-only code directory allows none. Only the stdlib and the zip.
    proc = subprocess.run([str(interpreter), "-I", "-S", "-B", "-c", script],
                          capture_output=True, text=True, timeout=180, check=False,
                          cwd=tmp_path, env={"RUNTIME_PROJECT_ID": PROJECT_ID,
                                             "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(code_dir.rglob("*")) == before, "the run wrote into the code directory"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert SECRET_CANARY not in proc.stdout + proc.stderr
    return result


@pytest.mark.parametrize("build", ["one", "py310"])
def test_the_zip_runs_a_cycle_from_read_only_code_on_its_bytecode(
        builds: dict[str, Any], build: str, tmp_path: Path, emulator: Emulator) -> None:
    python = "3.12" if build == "one" else "3.10"
    # The dry run's empty history (no file yet) is in memory, not a file in /tmp.
    stray = Path("/tmp/drs-report.db")
    was_there = stray.exists()
    result = _run_from_read_only_code(builds[build]["zip"], _require_interpreter(python),
                                      tmp_path, emulator, poison_sources=True)
    assert was_there or not stray.exists(), "the dry run wrote /tmp/drs-report.db"
    assert result["outside"] == []
    summary = result["summary"]
    assert summary["status"] == "ok", summary
    assert summary["counts"] == {"CRITICAL": 2, "WARNING": 3, "UNKNOWN": 2, "OK": 3}
    # A dry run renders every format (the channel's preview needs them) and writes none.
    [delivery] = summary["deliveries"]
    assert delivery["status"] == "dry-run" and delivery["size"] > 1000, delivery
    assert not (tmp_path / "out").exists()
    assert result["sqlalchemy"].startswith("2.0." if python == "3.10" else "2.")


def test_the_zip_carries_its_templates_compiled(builds: dict[str, Any]) -> None:
    with zipfile.ZipFile(builds["one"]["zip"]) as archive:
        compiled = [n for n in archive.namelist()
                    if n.startswith("drs_report/templates_compiled/")]
    modules = [n for n in compiled if n.endswith(".py")]
    assert len(modules) == 3  # html, txt, chat
    assert all(_pyc(n, "cpython-312") in compiled for n in modules)


def test_compiled_templates_render_the_same_as_the_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drs_report import render
    from tests.test_report import report, settings

    def render_both() -> dict[str, str]:
        render.environment.cache_clear()
        rendered: dict[str, str] = render.render_all(report("zh-cn"), settings("zh-cn"))
        return rendered

    from_sources = render_both()
    compiled = tmp_path / "templates_compiled"
    render.environment(None).compile_templates(
        str(compiled), zip=None, filter_func=lambda name: name.split("/")[0] in
        REPORT_TEMPLATE_DIRS)
    monkeypatch.setattr(render, "COMPILED_TEMPLATES_DIR", compiled)
    try:
        assert render_both() == from_sources
        loaders = render.environment(None).loader.loaders
        assert [type(loader).__name__ for loader in loaders] == ["ModuleLoader",
                                                                 "FileSystemLoader"]
    finally:
        render.environment.cache_clear()


def test_the_source_poisoning_would_be_noticed_without_bytecode(
        builds: dict[str, Any], tmp_path: Path, emulator: Emulator) -> None:
    """The check above can fail: the same zip without its bytecode reads the sources."""
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(builds["one"]["zip"]) as src, zipfile.ZipFile(stripped, "w") as dst:
        for info in src.infolist():
            if "__pycache__/" not in info.filename:
                dst.writestr(info, src.read(info))
    with pytest.raises(AssertionError, match="the source was read"):
        _run_from_read_only_code(stripped, _require_interpreter("3.12"), tmp_path / "run",
                                 emulator, poison_sources=True)


def test_write_zip_ignores_mtimes_and_order(builds: dict[str, Any], tmp_path: Path) -> None:
    with zipfile.ZipFile(builds["one"]["zip"]) as archive:
        archive.extractall(tmp_path / "unpacked")
    os.utime(tmp_path / "unpacked" / "index.py", (1_900_000_000, 1_900_000_000))
    again = tmp_path / "again.zip"
    write_zip(tmp_path / "unpacked", again)
    assert again.read_bytes() == builds["one"]["zip"].read_bytes()


# ---------------------------------------------------------------------------------------
# What the build refuses


BAD_CONFIGS = {
    "bad job id": ('[drs]\nregion = "cn-north-4"\n[[jobs]]\nid = "not-a-job"\n', "jobs[0].id"),
    "unknown key": ('[drs]\nregion = "cn-north-4"\nregoin = "x"\n[[jobs]]\n'
                    'id = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n', "did you mean 'region'"),
    "not TOML": ("[drs\n", "not valid TOML"),
    "bad port": ('[drs]\nregion = "cn-north-4"\n[[jobs]]\n'
                 'id = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n[[channels]]\ntype = "smtp"\n'
                 'host = "h"\nport = "many"\nfrom = "a@b.c"\nto = ["d@e.f"]\n',
                 "channels[0].port"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_fails_the_build_with_the_runs_own_error(case: str,
                                                              tmp_path: Path) -> None:
    text, words = BAD_CONFIGS[case]
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    output = tmp_path / "never.zip"
    build = package(ROOT, "--config", str(config), "--output", str(output), cwd=tmp_path)
    run = subprocess.run([sys.executable, "-m", "drs_report", "run", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
                         env={**os.environ, "HUAWEICLOUD_SDK_AK": CANARY_AK,
                              "HUAWEICLOUD_SDK_SK": CANARY_SK,
                              "RUNTIME_PROJECT_ID": "0" * 32})
    assert build.returncode == 2 and run.returncode == 2
    assert len(build.stderr.strip().splitlines()) == 1, build.stderr
    assert words in build.stderr
    assert build.stderr == run.stderr
    assert "Traceback" not in build.stderr
    assert not output.exists()


def test_a_secret_written_in_the_file_is_warned_of_without_its_value(tmp_path: Path) -> None:
    from drs_report.packaging import check_config

    config = tmp_path / "config.toml"
    config.write_text(
        '[drs]\nregion = "cn-north-4"\n[[jobs]]\nid = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n'
        f'[store]\nurl = "postgresql+psycopg://drs:{SECRET_CANARY}@db/drs"\n'
        '[[channels]]\ntype = "feishu"\nurl = "https://open.feishu.cn/open-apis/bot/v2/hook/x"\n'
        f'secret = "{SECRET_CANARY}"\n'
        '[[channels]]\ntype = "dingtalk"\nurl = "${DINGTALK_URL}"\nsecret = "${DINGTALK_KEY}"\n',
        encoding="utf-8")
    lines = check_config(config).describe()
    warned = [line.split()[1] for line in lines if line.startswith("warning:")]
    assert warned == ["channels[0].url", "channels[0].secret", "store.url"]
    assert SECRET_CANARY not in "\n".join(lines)


def test_a_targets_own_keys_are_encrypted_user_data_or_warned_of(tmp_path: Path) -> None:
    """A project in another account signs with keys of its own: whatever their ${NAME}s are
    called, the build lists them for encrypted user data, and keys typed into the file are
    warned of without their value."""
    from drs_report.packaging import check_config

    config = tmp_path / "config.toml"
    config.write_text(
        '[[drs.targets]]\nname = "partner"\nregion = "cn-south-1"\n'
        'project_id = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"\n'
        'ak = "${PARTNER_AK}"\nsk = "${PARTNER_S}"\nsecurity_token = "${PARTNER_T}"\n'
        '[[drs.targets.jobs]]\nid = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n'
        '[[drs.targets]]\nname = "typed"\nregion = "cn-north-4"\n'
        'project_id = "1a1b2c3d4e5f60718293a4b5c6d7e8f9"\n'
        f'ak = "{SECRET_CANARY}AK"\nsk = "{SECRET_CANARY}"\n'
        '[[drs.targets.jobs]]\nid = "8a470239-2308-4bb5-a6bc-1040402fjb21"\n',
        encoding="utf-8")
    lines = check_config(config).describe()
    listed = {line.split()[0]: line for line in lines if line.startswith("  ${")}
    for name in ("${PARTNER_AK}", "${PARTNER_S}", "${PARTNER_T}"):
        assert "encrypted user data" in listed[name], listed[name]
    warned = [line.split()[1] for line in lines if line.startswith("warning:")]
    assert warned == ["drs.targets[1].ak", "drs.targets[1].sk"]
    assert SECRET_CANARY not in "\n".join(lines)


def test_a_value_only_the_stand_ins_break_names_them(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[drs]\nregion = "cn-north-4"\nendpoint = "ftp://${DRS_HOST}"\n'
                      '[[jobs]]\nid = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n',
                      encoding="utf-8")
    build = package(ROOT, "--config", str(config), "--output", str(tmp_path / "x.zip"),
                    cwd=tmp_path)
    assert build.returncode == 2
    assert build.stderr.startswith("drs-report: error: drs.endpoint: ")
    assert "with ${DRS_HOST} standing in for the value" in build.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--platform", "win_amd64"], "--platform: 'win_amd64' is not what FunctionGraph runs"),
    (["--platform", "manylinux2014_aarch64"], "use manylinux2014_x86_64"),
    (["--python", "3.11"], "--python"),
    (["--config", "missing.toml"], "--config: no such file"),
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], words: str,
                                              tmp_path: Path) -> None:
    proc = package(ROOT, *args, "--output", str(tmp_path / "x.zip"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr
    assert not (tmp_path / "x.zip").exists()


def test_a_tampered_lock_fails_the_build(tmp_path: Path) -> None:
    _require_interpreter("3.12")
    checkout = copy_checkout(tmp_path / "checkout")
    lock = checkout / "function" / "drs_report" / "locks" / "runtime-py3.12.txt"
    text = lock.read_text("utf-8")
    lock.write_text(re.sub(r"(Jinja2==\S+ --hash=sha256:)[0-9a-f]{64}", r"\g<1>" + "0" * 64,
                           text), encoding="utf-8")
    proc = package(checkout, "--output", str(tmp_path / "x.zip"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("drs-report: error: installing the dependencies failed")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "x.zip").exists()


# ---------------------------------------------------------------------------------------
# The locks


def _name(requirement: str) -> str:
    match = re.match(r"^[A-Za-z0-9._-]+", requirement)
    assert match
    return match.group(0).lower().replace("_", "-")


def test_each_lock_pins_every_runtime_requirement_with_a_hash() -> None:
    for python in TARGET_PYTHONS:
        locked = {p.name.lower().replace("_", "-"): p for p in read_lock(python)}
        for requirement in RUNTIME_REQUIREMENTS:
            if "python_version < '3.11'" in requirement and python != "3.10":
                assert _name(requirement) not in locked
                continue
            assert _name(requirement) in locked, (python, requirement)
        assert "psycopg-binary" in locked  # psycopg[binary]


def test_pyproject_floors_are_the_oldest_locked_versions() -> None:
    """The suite runs on the 3.10 lock's versions, so no bound may promise older ones."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    floors = {_name(r): re.search(r">=([0-9][^,;\s]*)", r) for r in project["dependencies"]}
    oldest = {p.name.lower().replace("_", "-"): p.version for p in read_lock("3.10")}
    for name, floor in floors.items():
        assert floor is not None, name
        assert floor.group(1) == oldest[name], (name, floor.group(1), oldest[name])
    extra = project["optional-dependencies"]["postgresql"]
    assert any(oldest["psycopg"] in r for r in extra)
    # What the zip installs is what the package declares (plus psycopg for PostgreSQL).
    assert set(RUNTIME_REQUIREMENTS) == set(project["dependencies"]) | set(extra)
