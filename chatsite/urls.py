from django.contrib import admin
from django.urls import include, path

from chatsite.metrics import metrics
from rooms import health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("", include("rooms.urls")),
]
