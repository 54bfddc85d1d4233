from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/stepkit_django/checkpoint/")),
    path("admin/", admin.site.urls),
    path("api/stepkit/", include("stepkit_django.api.urls")),
    path("review/", include("stepkit_django.inbox.urls")),
]
