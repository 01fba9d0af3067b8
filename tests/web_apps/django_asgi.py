"""Django under ASGI (uvicorn)."""

import os

import _common

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")
from django.core.asgi import get_asgi_application

import obskit

_common.setup()
application = obskit.ASGIMiddleware(get_asgi_application())
