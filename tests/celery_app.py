"""The Celery app of the test project (broker: the local Redis)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("stepkit_tests", include=["stepkit_django.contrib.celery"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True
