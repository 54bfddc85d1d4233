"""URLs of the benchmark server: the API, the admin, and the bare-view limit of scenario 4."""

from typing import Any

from django.contrib import admin
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from stepkit_django.models import Checkpoint


@csrf_exempt
def bare_approve(request: HttpRequest, pk: Any) -> JsonResponse:
    """The limit: one conditional UPDATE, nothing else (no auth, no checks, no audit)."""
    updated = Checkpoint.objects.filter(pk=pk, status="pending").update(status="approved", version=F("version") + 1)
    return JsonResponse({"updated": updated}, status=200 if updated else 409)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/stepkit/", include("stepkit_django.api.urls")),
    path("bare/approve/<uuid:pk>/", bare_approve),
]
