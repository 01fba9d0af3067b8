"""Django test routes."""

from collections.abc import Iterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import include, path


def item(request: HttpRequest, **kwargs: int) -> JsonResponse:
    return JsonResponse(kwargs)


def boom(request: HttpRequest) -> JsonResponse:
    raise LookupError("no such order")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        for n in range(3):
            yield f"{n}\n".encode()

    return StreamingHttpResponse(chunks())


articles = [path("<int:year>/", item)]
urlpatterns = [
    path("<int:id>/update", item),
    path("articles/", include(articles)),
    path("boom/", boom),
    path("stream/", stream),
]
