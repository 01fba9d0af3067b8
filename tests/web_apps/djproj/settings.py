"""Minimal Django settings for the test service."""

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djproj.urls"
INSTALLED_APPS: list[str] = []
# First: records what bypasses the wrapper in asgi.py / wsgi.py (django.test.Client); requests that
# came through the wrapper pass through it, counted once.
MIDDLEWARE: list[str] = ["obskit.DjangoMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True
