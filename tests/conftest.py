pytest_plugins = ["tests.harness.conftest_postgres"]
