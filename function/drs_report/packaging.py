"""`drs-report package`: the deployable FunctionGraph zip.

At the zip's root: index.py, the drs_report package (templates and migrations included),
config.toml.sample, and the dependencies, installed by pip for the FunctionGraph runtime
(manylinux x86_64 wheels for Python 3.12 by default, or 3.10). Reproducible: entries sorted,
timestamps fixed (SOURCE_DATE_EPOCH, else 1980-01-01), permissions fixed, no bytecode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from drs_report.errors import ConfigError, DrsReportError
from drs_report.pipeline import EXIT_OK

# What the function imports at run time; psycopg only matters with a PostgreSQL store.
RUNTIME_REQUIREMENTS = [
    "huaweicloudsdkcore>=3.1.100",
    "requests>=2.31",
    "SQLAlchemy>=2.0.25,<3",
    "alembic>=1.13",
    "Jinja2>=3.1",
    "css-inline>=0.14",
    "psycopg[binary]>=3.1",
]
INDEX_PY = '''"""FunctionGraph entry point: `index.handler(event, context)`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    from drs_report.function import handle

    return handle(event, context, code_dir=Path(__file__).resolve().parent)
'''
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def _requirements(python: str) -> list[str]:
    reqs = list(RUNTIME_REQUIREMENTS)
    if python == "3.10" or (python == "local" and sys.version_info < (3, 11)):
        reqs.append("tomli>=2.0")
    return reqs


def install_dependencies(target: Path, *, python: str, platform: str) -> None:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
               "--disable-pip-version-check", "--target", str(target)]
    if python != "local":
        command += ["--platform", platform, "--python-version", python,
                    "--implementation", "cp", "--only-binary=:all:"]
    command += _requirements(python)
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise DrsReportError(f"installing the dependencies failed: {last}")


def stage_code(target: Path) -> None:
    """index.py, the package (symlinked templates copied as files) and the sample config."""
    package = Path(__file__).resolve().parent
    shutil.copytree(package, target / "drs_report", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    index = package.parent / "index.py"
    (target / "index.py").write_text(index.read_text("utf-8") if index.is_file() else INDEX_PY,
                                     encoding="utf-8")
    sample = package / "sample-config.toml"
    shutil.copyfile(sample, target / "config.toml.sample")


def write_zip(source: Path, output: Path) -> None:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    files = []
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in names:
            if not name.endswith(_SKIP_SUFFIXES):
                files.append(Path(root) / name)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(files, key=lambda p: p.relative_to(source).as_posix()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            # One mode for every file: dlopen needs only read access, and a mode taken from
            # the build machine would make two builds differ.
            info.external_attr = (0o644 | 0o100000) << 16
            archive.writestr(info, path.read_bytes())


def build_package(*, output: Path, python: str = "3.12",
                  platform: str = "manylinux2014_x86_64") -> int:
    if python not in ("3.10", "3.12", "local"):
        raise ConfigError("--python", f"{python!r} is not a FunctionGraph runtime; use 3.12, "
                                      "3.10 or local")
    with tempfile.TemporaryDirectory(prefix="drs-report-package-") as tmp:
        staging = Path(tmp)
        install_dependencies(staging, python=python, platform=platform)
        stage_code(staging)
        write_zip(staging, output)
    size = output.stat().st_size
    print(f"{output} ({size / 1024 / 1024:.1f} MiB) for Python {python}"
          f"{'' if python == 'local' else ' ' + platform}")
    return EXIT_OK
