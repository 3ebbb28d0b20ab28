"""Every environment variable drs-report reads, in one place.

An explicit argument (CLI flag, config key, FunctionGraph context) beats the environment.
"""

from __future__ import annotations

# The huaweicloud SDK's own names, so one set of variables serves the SDK and us.
AK = "HUAWEICLOUD_SDK_AK"
SK = "HUAWEICLOUD_SDK_SK"
SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"

# Path of the TOML configuration inside FunctionGraph (default: config.toml beside index.py).
CONFIG_PATH = "DRS_REPORT_CONFIG"

# Scalar settings may come from the environment: DRS_REPORT_<SECTION>_<KEY>, e.g.
# DRS_REPORT_STORE_URL or DRS_REPORT_DRS_PROJECT_ID. The environment wins over the file, so
# a function's user data can override the config.toml shipped in its zip.
SETTING_PREFIX = "DRS_REPORT_"

# Log level for the CLI and the function: DEBUG, INFO (default), WARNING, ERROR.
LOG_LEVEL = "DRS_REPORT_LOG_LEVEL"

# FunctionGraph sets these in every instance; their presence tells us where we run.
FUNCTIONGRAPH_MARKERS = ("RUNTIME_FUNC_NAME", "RUNTIME_PROJECT_ID")
# The function's code directory (read-only): set means "inside FunctionGraph" for the
# settings checks (only /tmp is writable there).
CODE_ROOT = "RUNTIME_CODE_ROOT"
# Every user data key and value as JSON, encrypted ones decrypted: read, never logged.
USER_DATA = "RUNTIME_USERDATA"
# The function's timeout in seconds (a run killed by it leaves a lease that must expire).
TIMEOUT = "RUNTIME_TIMEOUT"
# The only writable place in FunctionGraph; relative paths and defaults go under it there.
FUNCTIONGRAPH_TMP = "/tmp/drs-report"

# The tests' PostgreSQL server (documented in README); else 127.0.0.1:5432.
TEST_POSTGRES_URL = "DRS_REPORT_TEST_POSTGRES_URL"

# The test suite's own switches (README, Tests): fail instead of skipping; rewrite goldens.
TEST_CI = "DRS_REPORT_CI"
TEST_UPDATE_GOLDEN = "DRS_REPORT_UPDATE_GOLDEN"

# The URN of the SMN topic the Terraform module creates, set in the function's user data; a
# config refers to it as topic_urn = "${DRS_REPORT_SMN_TOPIC_URN}".
SMN_TOPIC_URN = "DRS_REPORT_SMN_TOPIC_URN"
