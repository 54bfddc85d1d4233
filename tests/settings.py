"""Settings of the test project. ``DATABASE_URL`` selects the database (SQLite by default)."""

import os
from datetime import timedelta
from importlib.util import find_spec

import dj_database_url
import django

SECRET_KEY = "stepkit-django-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dj_database_url.parse(os.environ.get("DATABASE_URL", "sqlite:///:memory:")),
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and DATABASES["default"]["NAME"] not in ("", ":memory:"):
    # A file database tests on a file too (Django's default test database is in memory, whose shared
    # cache locks tables, not the file: concurrent writers behave differently).
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}.test"}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_tasks_db",
    "stepkit_django",
    "tests.testapp",
]
if find_spec("django.tasks") is None:  # Django 5.2: the tasks framework comes from the backport
    INSTALLED_APPS.insert(0, "django_tasks")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"

# Tests create many users; the slow default hasher would dominate the run time.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "stepkit_django test API",
    "VERSION": "1.0.0",
    # As the API's schema/ view: OpenAPI 3.0 cannot express a nullable reference that strict validators accept.
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": {
        "CheckpointStatusEnum": "stepkit_django.status.CheckpointStatus",
        "RunStatusEnum": "stepkit_django.status.RunStatus",
        "AuditActionEnum": "stepkit_django.status.AuditAction",
    },
}

# Worker processes started by the tests read the same settings; these let a test
# choose the executor and a short lease for them through the environment.
STEPKIT: dict[str, object] = {
    "EXECUTOR": os.environ.get("STEPKIT_EXECUTOR", "inline"),
    "LEASE_SECONDS": float(os.environ.get("STEPKIT_LEASE_SECONDS", "60")),
}

# A worker process started by the notification tests emails through their SMTP server on 127.0.0.1,
# or posts to their webhook server; a short lease lets a test see a killed sender replaced.
# Django 6.1 configures email with MAILERS (its EMAIL_* settings are deprecated); 5.2 with EMAIL_*.
_MAILERS = django.VERSION >= (6, 1)
if _MAILERS:
    MAILERS: dict[str, dict[str, object]] = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
if os.environ.get("STEPKIT_SMTP_PORT"):
    STEPKIT["NOTIFIERS"] = {"email": {"BACKEND": "stepkit_django.notifications.EmailNotifier"}}
    # A receiver that holds the connection never blocks a worker for good: a 30-second timeout.
    if _MAILERS:
        MAILERS = {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": int(os.environ["STEPKIT_SMTP_PORT"]), "timeout": 30},
            }
        }
    else:
        EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        EMAIL_HOST = "127.0.0.1"
        EMAIL_PORT = int(os.environ["STEPKIT_SMTP_PORT"])
        EMAIL_TIMEOUT = 30
if os.environ.get("STEPKIT_WEBHOOK_URL"):
    STEPKIT["NOTIFIERS"] = {
        "hook": {
            "BACKEND": "stepkit_django.notifications.WebhookNotifier",
            "OPTIONS": {"url": os.environ["STEPKIT_WEBHOOK_URL"], "secret": "test-webhook-secret"},
        }
    }
if os.environ.get("STEPKIT_NOTIFY_LEASE_SECONDS"):
    STEPKIT["NOTIFY_LEASE"] = timedelta(seconds=float(os.environ["STEPKIT_NOTIFY_LEASE_SECONDS"]))
if os.environ.get("STEPKIT_NOTIFY_RETRY_SECONDS"):
    STEPKIT["NOTIFY_RETRY_DELAY"] = timedelta(seconds=float(os.environ["STEPKIT_NOTIFY_RETRY_SECONDS"]))

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
