"""URLs of the Django example: the patterns are what slaOS sees as ``route``."""

from __future__ import annotations

import views
from django.urls import path

urlpatterns = [
    path("items/<int:pk>/", views.item),
    path("async/<int:pk>/", views.async_item),
    path("slow/", views.slow),
    path("boom/", views.boom),
    path("health/", views.health),
]
