"""Downsampling: placeholder."""

from __future__ import annotations

from drs_report.store.engine import StoreBase


class DownsamplingMixin(StoreBase):
    pass
