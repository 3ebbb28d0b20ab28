"""`drs-report package`: the deployable FunctionGraph zip, the same bytes on every machine.

At the zip's root: index.py, the drs_report package (templates and migrations included),
config.toml (with `--config`, checked first) or config.toml.sample, and the dependencies at
the versions of the committed lock for the target Python (`locks/runtime-py3.X.txt`:
manylinux2014 x86_64 CPython wheels, sha256-pinned), each with its `.pyc` compiled by that
Python in unchecked-hash mode, and the shipped templates compiled by Jinja: FunctionGraph's
code directory is read-only, so what is not compiled in the zip is compiled again by every
cold start.

Reproducible: entries sorted, timestamps fixed (SOURCE_DATE_EPOCH, else 1980-01-01), one
file mode, no console scripts (their shebang is the build machine's interpreter path), and
bytecode that embeds no build path or time.

The locks are made with `python -m drs_report.packaging lock` (pip resolves for the target
Python and platform, so it runs on any machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drs_report.errors import ConfigError, DrsReportError
from drs_report.pipeline import EXIT_OK

# The FunctionGraph Python runtimes, and the one platform their wheels must be built for:
# x86_64 Linux; manylinux2014 (glibc 2.17) runs on any of its images.
TARGET_PYTHONS = ("3.10", "3.12")
PLATFORM = "manylinux2014_x86_64"
PLATFORM_ALIASES = ("manylinux2014_x86_64", "manylinux_2_17_x86_64")

# What the function imports at run time; psycopg only matters with a PostgreSQL store.
# The locks pin these and everything they pull in; pyproject.toml's floors follow the
# oldest locked versions (the 3.10 lock), which the test suite runs on too.
RUNTIME_REQUIREMENTS = (
    "huaweicloudsdkcore>=3.1.219",
    "requests>=2.34.2",
    "SQLAlchemy>=2.0.58,<3",
    "alembic>=1.20.1",
    "Jinja2>=3.1.6",
    "css-inline>=0.24.0",
    "psycopg[binary]>=3.3.9",
    "tomli>=2.5.0; python_version < '3.11'",
)
LOCK_DIR = Path(__file__).resolve().parent / "locks"

INDEX_PY = '''"""FunctionGraph entry point: `index.handler(event, context)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    from drs_report.function import handle

    return handle(event, context, code_dir=Path(__file__).resolve().parent)
'''
# The report's own templates, compiled into the zip; any other template is found in the
# sources, after the compiled ones, by whatever environment renders it.
REPORT_TEMPLATE_DIRS = ("html", "txt", "chat")
# 1980-01-01, the earliest time a zip entry can carry.
ZIP_EPOCH = 315532800
# Where FunctionGraph unpacks the code (RUNTIME_CODE_ROOT); the path tracebacks show.
CODE_ROOT = "/opt/function/code"
# A project id for the check of a config that leaves drs.project_id to the function's own.
STAND_IN_PROJECT_ID = "0" * 32


def lock_path(python: str) -> Path:
    return LOCK_DIR / f"runtime-py{python}.txt"


# ---------------------------------------------------------------------------------------
# The locks


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def requirements_for(python: str) -> list[str]:
    """RUNTIME_REQUIREMENTS for the target Python, markers decided for it: pip would decide
    them for the interpreter it runs on, whatever --python-version says."""
    chosen = []
    for requirement in RUNTIME_REQUIREMENTS:
        spec, _, marker = requirement.partition(";")
        if marker:
            match = re.fullmatch(r"\s*python_version\s*<\s*'(\d+)\.(\d+)'\s*", marker)
            if match is None:
                raise DrsReportError(f"cannot decide the marker of {requirement!r}")
            target = tuple(int(n) for n in python.split("."))
            if target >= (int(match.group(1)), int(match.group(2))):
                continue
        chosen.append(spec.strip())
    return chosen


def resolve_pins(python: str, *, pip: Sequence[str] | None = None) -> list[Pin]:
    """What pip installs today for RUNTIME_REQUIREMENTS on the target Python and platform."""
    with tempfile.TemporaryDirectory(prefix="drs-report-lock-") as tmp:
        report = Path(tmp) / "report.json"
        command = [*(pip or [sys.executable, "-m", "pip"]), "install", "--dry-run", "--quiet",
                   "--ignore-installed", "--disable-pip-version-check",
                   "--report", str(report), "--target", str(Path(tmp) / "target"),
                   *_platform_flags(python), *requirements_for(python)]
        _pip(command, "resolving the dependencies")
        installs = json.loads(report.read_text("utf-8"))["install"]
    pins = [Pin(i["metadata"]["name"], i["metadata"]["version"],
                i["download_info"]["archive_info"]["hashes"]["sha256"]) for i in installs]
    return sorted(pins, key=lambda p: p.name.lower())


def write_lock(python: str, pins: Sequence[Pin]) -> Path:
    path = lock_path(python)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [
        f"# The function's dependencies for FunctionGraph Python {python} ({PLATFORM}).",
        "# Made by: python -m drs_report.packaging lock   (do not edit by hand)",
        "# Used by: drs-report package; pip install --require-hashes -r THIS_FILE",
    ]
    path.write_text("\n".join(header + [p.line() for p in pins]) + "\n", encoding="utf-8")
    return path


def read_lock(python: str) -> list[Pin]:
    path = lock_path(python)
    if not path.is_file():
        raise DrsReportError(f"no lock for Python {python} at {path}; make it with "
                             "`python -m drs_report.packaging lock`")
    pins = []
    for line in path.read_text("utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+) --hash=sha256:([0-9a-f]{64})$", line)
        if match:
            pins.append(Pin(*match.groups()))
        elif line.strip() and not line.startswith("#"):
            raise DrsReportError(f"{path}: cannot read {line!r}; make the lock again")
    return pins


# ---------------------------------------------------------------------------------------
# Building


def _platform_flags(python: str) -> list[str]:
    return ["--platform", PLATFORM, "--python-version", python, "--implementation", "cp",
            "--only-binary=:all:"]


def _pip(command: list[str], what: str) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines()
                 if not line.startswith("WARNING")]
        raise DrsReportError(f"{what} failed: {(lines or ['pip failed'])[-1].strip()}")


def install_dependencies(target: Path, *, python: str) -> None:
    """The lock's wheels, hash-checked, without their console scripts."""
    with tempfile.TemporaryDirectory(prefix="drs-report-reqs-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("\n".join(p.line() for p in read_lock(python)) + "\n",
                                encoding="utf-8")
        _pip([sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps",
              "--require-hashes", "--disable-pip-version-check", "--target", str(target),
              *_platform_flags(python), "-r", str(requirements)],
             "installing the dependencies")
    drop_console_scripts(target)


def drop_console_scripts(target: Path) -> None:
    """bin/ holds entry-point scripts whose shebang is the build interpreter's path: useless
    in the function and different on every machine. RECORD files list them; drop the lines."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text("utf-8").splitlines()
        kept = [line for line in lines if not line.startswith(("../", "bin/"))]
        record.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def find_interpreter(python: str) -> Path | None:
    """CPython `python` (e.g. 3.12) to compile the bytecode with: `python3.12` on PATH, else
    the newest pyenv build of it."""
    candidates: list[Path] = []
    on_path = shutil.which(f"python{python}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = [p for p in (pyenv_root / "versions").glob(f"{python}.*/bin/python")
              if re.fullmatch(rf"{re.escape(python)}\.\d+", p.parent.parent.name)]
    candidates += sorted(builds, key=lambda p: int(p.parent.parent.name.rsplit(".", 1)[1]),
                         reverse=True)
    for candidate in candidates:
        proc = subprocess.run([str(candidate), "-c", "import sys, platform; print("
                               "'%d.%d' % sys.version_info[:2], platform.python_implementation())"],
                              capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.split() == [python, "CPython"]:
            return candidate
    return None


def compile_bytecode(staging: Path, interpreter: Path) -> None:
    """`__pycache__/*.cpython-3X.pyc` for every module, valid whatever the zip's timestamps.

    unchecked-hash: the interpreter loads them without comparing the source's mtime (which
    the zip fixes to 1980). One worker, sorted walk and a fixed hash seed (frozenset
    constants are marshalled in hash order) so that two builds give the same bytes."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0",
           "SOURCE_DATE_EPOCH": str(ZIP_EPOCH)}
    proc = subprocess.run(
        [str(interpreter), "-I", "-m", "compileall", "-q", "-q",
         "--invalidation-mode", "unchecked-hash", "-s", str(staging), "-p", CODE_ROOT,
         str(staging)],
        capture_output=True, text=True, check=False, env=env)
    # A few libraries ship files for other Pythons that do not compile; they are never
    # imported, so they stay source-only. Anything else would be a broken build.
    if proc.returncode not in (0, 1):
        raise DrsReportError(f"compiling the bytecode with {interpreter} failed: "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def compile_templates(staging: Path, interpreter: Path) -> None:
    """The shipped Jinja templates as Python modules (render.COMPILED_TEMPLATES_DIR), made by
    the target Python with the zip's own Jinja and render.environment(), so the code is what
    a run would compile itself."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); "
              "from drs_report.render import COMPILED_TEMPLATES_DIR, environment; "
              "environment(None).compile_templates(str(COMPILED_TEMPLATES_DIR), zip=None, "
              "ignore_errors=False, filter_func=lambda name: name.split('/')[0] in "
              f"{REPORT_TEMPLATE_DIRS!r})")
    proc = subprocess.run([str(interpreter), "-I", "-S", "-B", "-c", script, str(staging)],
                          capture_output=True, text=True, check=False,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "PYTHONHASHSEED": "0"})
    if proc.returncode != 0:
        raise DrsReportError(f"compiling the templates with {interpreter} failed: "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def stage_code(target: Path) -> None:
    """index.py, the package (symlinked templates copied as files) and the sample config."""
    package = Path(__file__).resolve().parent
    shutil.copytree(package, target / "drs_report", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "locks",
                                  "templates_compiled"))
    index = package.parent / "index.py"
    (target / "index.py").write_text(index.read_text("utf-8") if index.is_file() else INDEX_PY,
                                     encoding="utf-8")
    sample = package / "sample-config.toml"
    shutil.copyfile(sample, target / "config.toml.sample")


def write_zip(source: Path, output: Path) -> None:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", str(ZIP_EPOCH)))
    stamp = time.gmtime(max(epoch, ZIP_EPOCH))[:6]
    files = [Path(root) / name for root, _dirs, names in os.walk(source) for name in names]
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(files, key=lambda p: p.relative_to(source).as_posix()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            # One mode for every file: dlopen needs only read access, and a mode taken from
            # the build machine would make two builds differ.
            info.external_attr = (0o644 | 0o100000) << 16
            archive.writestr(info, path.read_bytes())


def build_package(*, output: Path, python: str = "3.12", platform: str = PLATFORM,
                  config: Path | None = None, out: Callable[[str], None] = print) -> int:
    if python not in TARGET_PYTHONS:
        raise ConfigError("--python", f"{python!r} is not a FunctionGraph Python runtime; "
                                      f"use {' or '.join(TARGET_PYTHONS)}")
    if platform not in PLATFORM_ALIASES:
        raise ConfigError("--platform", f"{platform!r} is not what FunctionGraph runs; it runs "
                                        f"x86_64 Linux: use {PLATFORM}")
    check = check_config(config) if config is not None else None
    interpreter = find_interpreter(python)
    with tempfile.TemporaryDirectory(prefix="drs-report-package-") as tmp:
        staging = Path(tmp) / "code"
        staging.mkdir()
        install_dependencies(staging, python=python)
        stage_code(staging)
        if config is not None:
            shutil.copyfile(config, staging / "config.toml")
        if interpreter is not None:
            compile_templates(staging, interpreter)
            compile_bytecode(staging, interpreter)
        write_zip(staging, output)
    if check is not None:
        for line in check.describe():
            out(line)
    else:
        out("note: no --config: the zip has no config.toml; set DRS_REPORT_CONFIG to the "
            "path of one, or build with --config FILE")
    if interpreter is None:
        out(f"note: no Python {python} interpreter found (python{python} on PATH or pyenv); "
            "the zip has no bytecode, so every cold start compiles the modules it imports")
    size = output.stat().st_size
    compiled = f", bytecode by {interpreter}" if interpreter is not None else ""
    out(f"{output} ({size / 1024 / 1024:.1f} MiB) for Python {python} {PLATFORM}{compiled}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# The config, checked at build time


@dataclass(frozen=True)
class Reference:
    """One `${NAME}` in the config: where it is used, and where its value must come from."""

    name: str
    key: str
    optional: bool  # ${NAME:-default}
    secret: bool

    @property
    def source(self) -> str:
        if self.secret:
            return "encrypted user data (Terraform: secrets)"
        return "user data (Terraform: settings)"


@dataclass(frozen=True)
class ConfigCheck:
    path: Path
    jobs: int
    channels: int
    references: tuple[Reference, ...]
    literal_secrets: tuple[str, ...] = ()  # keys whose secret value is written in the file

    def describe(self) -> list[str]:
        jobs = "every job of the project" if self.jobs == 0 else f"{self.jobs} job(s)"
        lines = [f"{self.path}: valid ({jobs}, {self.channels} channel(s)); "
                 "packed as config.toml beside index.py"]
        if self.references:
            lines.append("it reads these at run time (in FunctionGraph from the function's "
                         "environment variables; for `drs-report run` from the environment):")
            width = max(len(r.name) for r in self.references) + 3
            for ref in self.references:
                need = "optional, " if ref.optional else ""
                lines.append(f"  {('${' + ref.name + '}').ljust(width)} {ref.key}: "
                             f"{need}{ref.source}")
        for key in self.literal_secrets:
            lines.append(f"warning: {key} is a secret written in the file, so it is in the zip "
                         "for anyone who may read the function's code; write ${NAME} there "
                         "and pass NAME in Terraform's secrets")
        return lines


def find_literal_secrets(data: Any) -> list[str]:
    """Keys holding a secret as text in the file rather than as a ${NAME}."""
    from drs_report.config import ENV_REF_RE, SECRET_CHANNEL_KEYS, TARGET_SECRET_KEYS

    found = []
    channels = data.get("channels") if isinstance(data, dict) else None
    for i, channel in enumerate(channels if isinstance(channels, list) else []):
        for key, value in (channel.items() if isinstance(channel, dict) else ()):
            values = value if isinstance(value, list) else [value]
            if key in SECRET_CHANNEL_KEYS and any(
                    isinstance(v, str) and v.strip() and not ENV_REF_RE.search(v)
                    for v in values):
                found.append(f"channels[{i}].{key}")
    drs = data.get("drs") if isinstance(data, dict) else None
    targets = drs.get("targets") if isinstance(drs, dict) else None
    for i, target in enumerate(targets if isinstance(targets, list) else []):
        for key in TARGET_SECRET_KEYS:
            value = target.get(key) if isinstance(target, dict) else None
            if isinstance(value, str) and value.strip() and not ENV_REF_RE.search(value):
                found.append(f"drs.targets[{i}].{key}")
    store = data.get("store") if isinstance(data, dict) else None
    url = store.get("url") if isinstance(store, dict) else None
    if isinstance(url, str) and not ENV_REF_RE.search(url) and \
            re.match(r"^[a-z0-9+]+://[^:/@]*:[^@]+@", url):
        found.append("store.url")
    return found


_SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|(^|_)(SK|KEY|URL)$")


def find_references(data: Any, key: str = "") -> Iterator[tuple[str, str, bool]]:
    """(name, dotted key, has a default) for every ${NAME} in the TOML data."""
    from drs_report.config import ENV_REF_RE

    if isinstance(data, str):
        for match in ENV_REF_RE.finditer(data):
            yield match.group(1), key, match.group(2) is not None
    elif isinstance(data, dict):
        for name, value in data.items():
            yield from find_references(value, f"{key}.{name}" if key else name)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from find_references(value, f"{key}[{i}]")


def _is_secret(name: str, key: str) -> bool:
    from drs_report.config import SECRET_CHANNEL_KEYS, TARGET_SECRET_KEYS

    last = re.sub(r"\[\d+\]$", "", key).rsplit(".", 1)[-1]
    in_secret_key = (key.startswith("channels[") and last in SECRET_CHANNEL_KEYS) or \
        (key.startswith("drs.targets[") and last in TARGET_SECRET_KEYS) or key == "store.url"
    return in_secret_key or bool(_SECRET_NAME_RE.search(name))


def _within(outer: str, inner: str) -> bool:
    """`channels[1]` holds `channels[1].url` and `channels[1].to[0]`, not `channels[10]`."""
    return inner == outer or inner.startswith((f"{outer}.", f"{outer}["))


# Stand-ins for values that arrive at run time, tried in turn until the key they sit in
# accepts one: an endpoint, a webhook URL, a number, a flag, an address, a database, a word.
_STAND_INS = ("https://{name}.stand-in.invalid", "https://{name}.stand-in.invalid/hook", "1",
              "true", "{name}@stand-in.invalid", "sqlite:////tmp/{name}.db", "stand-in-{name}")


def check_config(path: Path) -> ConfigCheck:
    """Validate the file as a run in FunctionGraph would, with every `${NAME}` that only the
    function's environment can give standing in for its value.

    A problem that does not depend on those values raises the run's own one-line
    ConfigError; one that every stand-in meets too is raised naming the stand-in."""
    from drs_report.config import load_settings, read_toml

    data = read_toml(path)
    found = list(find_references(data))
    references = {(name, key): Reference(name, key, optional, _is_secret(name, key))
                  for name, key, optional in found}
    # A name with a default somewhere is still needed where it has none.
    required = {name for name, _key, optional in found if not optional}
    attempt = dict.fromkeys(required, 0)
    environ: Mapping[str, str]
    while True:
        environ = {"RUNTIME_PROJECT_ID": STAND_IN_PROJECT_ID,
                   **{name: _STAND_INS[i].format(name=name.lower().replace("_", "-"))
                      for name, i in attempt.items()}}
        try:
            settings = load_settings(path, environ)
            break
        except ConfigError as e:
            blamed = [name for (name, key) in references
                      if name in attempt and e.key and (_within(e.key, key) or _within(key, e.key))]
            movable = [n for n in blamed if attempt[n] + 1 < len(_STAND_INS)]
            if not movable:
                if blamed:
                    names = ", ".join(f"${{{n}}}" for n in sorted(set(blamed)))
                    raise ConfigError(e.key, f"{e.problem} (with {names} standing in for "
                                             "the value the function gets at run time)") \
                        from None
                raise
            for name in movable:
                attempt[name] += 1
    ordered = sorted(references.values(), key=lambda r: (r.name, r.key))
    return ConfigCheck(path=path, jobs=len(settings.jobs), channels=len(settings.channels),
                       references=tuple(ordered),
                       literal_secrets=tuple(find_literal_secrets(data)))


# ---------------------------------------------------------------------------------------
# python -m drs_report.packaging lock


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m drs_report.packaging",
        description="Make the committed locks of the function's dependencies.")
    sub = parser.add_subparsers(dest="command", required=True)
    lock = sub.add_parser("lock", help="resolve the dependencies for each FunctionGraph Python "
                                       "and write locks/runtime-py3.X.txt")
    lock.add_argument("--python", action="append", choices=TARGET_PYTHONS,
                      help="only this target (repeatable; default: all)")
    args = parser.parse_args(argv)
    for python in args.python or TARGET_PYTHONS:
        pins = resolve_pins(python)
        path = write_lock(python, pins)
        print(f"{path}: {len(pins)} packages for Python {python}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
