"""URLs of the benchmark server: the API, the admin, and scenario 4's bare-view limit and DRF floor."""

from typing import Any

from django.contrib import admin
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from benchmarks.queue_bench import ROW_COLUMNS
from stepkit_django.models import Checkpoint


@csrf_exempt
def bare_approve(request: HttpRequest, pk: Any) -> JsonResponse:
    """The limit: one conditional UPDATE, nothing else (no auth, no checks, no audit)."""
    updated = Checkpoint.objects.filter(pk=pk, status="pending").update(status="approved", version=F("version") + 1)
    return JsonResponse({"updated": updated}, status=200 if updated else 409)


class DrfApprove(APIView):
    """The framework's floor: the API's token authentication and DRF request handling, then the same one UPDATE."""

    def post(self, request: Request, pk: Any) -> Response:
        updated = Checkpoint.objects.filter(pk=pk, status="pending").update(status="approved", version=F("version") + 1)
        return Response({"updated": updated}, status=200 if updated else 409)


QUEUE_SQL = (
    "SELECT COUNT(*) FROM stepkit_django_checkpoint WHERE status = 'pending' AND pipeline_name = %s",
    f"SELECT {ROW_COLUMNS} FROM stepkit_django_checkpoint WHERE status = 'pending' AND pipeline_name = %s "
    "ORDER BY created_at LIMIT 50",
)


class DrfQueue(APIView):
    """The framework's floor for the queue list: the limit's raw SQL behind DRF's authentication and rendering."""

    def get(self, request: Request) -> Response:
        from django.db import connection

        pipeline = request.query_params.get("pipeline", "")
        with connection.cursor() as cursor:
            cursor.execute(QUEUE_SQL[0], [pipeline])
            count = cursor.fetchone()[0]
            cursor.execute(QUEUE_SQL[1], [pipeline])
            columns = [c.name for c in cursor.description]
            results = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        return Response({"count": count, "results": results})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/stepkit/", include("stepkit_django.api.urls")),
    path("bare/approve/<uuid:pk>/", bare_approve),
    path("drf/approve/<uuid:pk>/", DrfApprove.as_view()),
    path("drf/queue/", DrfQueue.as_view()),
]
