"""drs-report: status reports and alerts for Huawei Cloud DRS jobs."""

__version__ = "0.1.0"
