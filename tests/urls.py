from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/stepkit/", include("stepkit_django.api.urls")),
    path("review/", include("stepkit_django.inbox.urls")),
]
