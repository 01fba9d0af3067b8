"""Django under WSGI (gunicorn)."""

import os

import _common

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")
from django.core.wsgi import get_wsgi_application

import obskit

_common.setup()
application = obskit.WSGIMiddleware(get_wsgi_application())
