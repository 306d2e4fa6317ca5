pytest_plugins = ["tests.harness.conftest_postgres", "tests.harness.conftest_kafka"]
