"""`GET /metrics`: this worker's figures in Prometheus' text format, to allowed addresses only.

The chat's own (rooms/metrics.py, chatsite/server/crowds.py) and django-prometheus' HTTP and
database figures share prometheus_client's default registry. Each worker answers for itself
(no multiprocess mode): scrape every worker, not the load balancer. The addresses allowed are
CHATSITE_METRICS_ALLOW's (addresses or networks; `settings.METRICS_ALLOW`); behind nginx with
`--proxy-headers` the address is the client's, so nginx itself is no way in.
"""

from __future__ import annotations

from ipaddress import ip_address

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import rooms.metrics  # noqa: F401 - registers the chat's figures


def metrics(request: HttpRequest) -> HttpResponse:
    try:
        client = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return HttpResponseForbidden("Metrics are for the operator's addresses only.\n")
    if not any(client in network for network in settings.METRICS_ALLOW):
        return HttpResponseForbidden("Metrics are for the operator's addresses only.\n")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
