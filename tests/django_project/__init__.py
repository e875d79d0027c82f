"""A small Django project for tests/test_django.py: settings, URLs and views."""
