"""Settings of the example project: SQLite next to this file unless DATABASE_URL says otherwise."""

import os
from importlib.util import find_spec
from pathlib import Path

import dj_database_url
import django
from django.utils.translation import gettext_lazy as _

from stepkit_django.api import ENUM_NAME_OVERRIDES

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "stepkit-django-demo-key-change-me-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
# English unless the browser asks for French (LocaleMiddleware below); stepkit_django ships both.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
ROOT_URLCONF = "example_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {
    "default": dj_database_url.parse(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
}

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
    "example_project.demo",
]
if find_spec("django.tasks") is None:  # Django 5.2: the tasks framework comes from the backport
    INSTALLED_APPS.insert(0, "django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language each browser asks for (Accept-Language), among LANGUAGES: a French browser gets the admin,
    # the review queue and the API's messages in French (docs/how-to/translate.md).
    "django.middleware.locale.LocaleMiddleware",
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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "stepkit_django demo API",
    "VERSION": "1.0.0",
    # As the API's schema/ view: OpenAPI 3.0 cannot express a nullable reference that strict validators accept.
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": ENUM_NAME_OVERRIDES,
}

STEPKIT = {
    # Checkpoints older than a week are refused.
    "CHECKPOINT_MAX_AGE": 7 * 24 * 3600,
    # Runs advance in `manage.py db_worker` (django-tasks-db), not in web requests.
    "EXECUTOR": os.environ.get("STEPKIT_EXECUTOR", "tasks"),
    # Reviewers are emailed when an item waits for them, starters when it is decided (docs/how-to/notifications.md).
    "NOTIFIERS": {"email": {"BACKEND": "stepkit_django.notifications.EmailNotifier"}},
    # The host of the emails' links.
    "BASE_URL": os.environ.get("STEPKIT_BASE_URL", "http://127.0.0.1:8000"),
}

# The demo's emails are written to files in demo-outbox/ (git-ignored), one file per batch, rather than sent:
# the worker and the web server both write there, and the messages stay after the terminal has scrolled.
DEFAULT_FROM_EMAIL = "review@stepkit.example"
EMAIL_OUTBOX = os.environ.get("STEPKIT_DEMO_OUTBOX", str(BASE_DIR.parent / "demo-outbox"))
if django.VERSION >= (6, 1):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "OPTIONS": {"file_path": EMAIL_OUTBOX},
        }
    }
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = EMAIL_OUTBOX

# The embedded database worker: no broker to install.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "formatters": {"plain": {"format": "%(message)s"}},
    "loggers": {"stepkit_django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
