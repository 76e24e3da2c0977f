"""Probe one worker's /healthz from beside it: exit 0 if it answers 200, else 1.

    python -m deploy.healthcheck [http://127.0.0.1:8000]

For container health checks and monitoring that talk to a worker directly, past nginx. It sends
what nginx would: a Host from DJANGO_ALLOWED_HOSTS (else Django answers 400) and
`X-Forwarded-Proto: https` (else DJANGO_SSL_REDIRECT answers 301).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    base = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000"
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h.strip()]
    request = urllib.request.Request(  # noqa: S310
        base.rstrip("/") + "/healthz",
        headers={"Host": hosts[0] if hosts else "127.0.0.1", "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = response.read().decode(errors="replace")
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(errors="replace"), exc.code
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"{status} {body}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
