"""Root conftest: makes ``pytest --benchmark-only`` at the repository root run suites/ as
well (plain ``pytest`` stays the tests/ correctness run). The suites' plugin itself is
loaded by its ``pytest11`` entry point (see pyproject.toml)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if (
        config.getoption("benchmark_only", False)
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and str(config.rootpath / "suites") not in config.args
    ):
        config.args.append(str(config.rootpath / "suites"))
