"""Fixtures shared by every test module live in tests/fixtures/, one module per area."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.databases",
    "tests.fixtures.receivers",
    "tests.fixtures.obs",
    "tests.web_fixtures",
]
