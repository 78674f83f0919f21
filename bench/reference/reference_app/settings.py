"""Minimal Django settings for the benchmark's reference server."""

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "reference_app.asgi.application"
USE_TZ = True
