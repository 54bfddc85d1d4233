"""Settings of the benchmarks: the test project plus the benchmark pipelines, on PostgreSQL."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stepkit_bench")

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.benchapp"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405  # persistent connections, as in production
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
STEPKIT = {"EXECUTOR": os.environ.get("STEPKIT_BENCH_EXECUTOR", "tasks")}
LOGGING = {"version": 1, "disable_existing_loggers": False}
ROOT_URLCONF = "benchmarks.urls"
