"""Settings of the test project; tests/test_django.py configures Django with them once."""

from __future__ import annotations

SECRET_KEY = "agent-run-id-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "testserver", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "agent_run_id.django",
]
MIDDLEWARE = [
    "agent_run_id.django.RunIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.django_project.urls"
# In memory; Django's test database for it is shared by every thread of the process.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
# Leave the process's logging (and the tests' capturing handlers) alone.
LOGGING_CONFIG = None
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
