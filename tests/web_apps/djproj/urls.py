"""Django test routes."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def item(request: HttpRequest, **kwargs: int) -> JsonResponse:
    return JsonResponse(kwargs)


def boom(request: HttpRequest) -> JsonResponse:
    raise LookupError("no such order")


articles = [path("<int:year>/", item)]
urlpatterns = [
    path("<int:id>/update", item),
    path("articles/", include(articles)),
    path("boom/", boom),
]
