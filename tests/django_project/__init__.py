"""A tiny Django URLconf and views for tests/test_django.py (settings live in that module)."""
