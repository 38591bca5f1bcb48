"""URLconf for tests/test_django.py: plain, included and regex routes."""

from __future__ import annotations

from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("items/<int:pk>/", views.item),
    path("slow/", views.slow),
    path("boom/", views.boom),
    path("health/", views.slow),
    path("async/<int:pk>/", views.async_item),
    path("api/", include([path("v1/items/<int:pk>/", views.item)])),
    re_path(r"^legacy/(?P<pk>[0-9]+)/$", views.legacy),
]
