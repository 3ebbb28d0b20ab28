"""FunctionGraph entry point: `index.handler(event, context)`.

Thin on purpose: everything happens in drs_report.function.handle, which runs the same
pipeline as `drs-report run`. The configuration defaults to config.toml beside this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    from drs_report.function import handle

    return handle(event, context, code_dir=Path(__file__).resolve().parent)
