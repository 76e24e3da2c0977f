# One chat-site worker: `daphne` on port 8000. docker-compose.yml runs several behind nginx;
# docs/deploy.md explains the settings it reads from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 chatsite
WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=chatsite:chatsite . .
USER chatsite

# Static files are part of the image (hashed names, compressed copies). The key only lets the
# settings load: nothing secret is baked in, and no database or Redis is needed here.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only python manage.py collectstatic --noinput

EXPOSE 8000
# daphne gets SIGTERM on `docker stop`: the site closes its sockets with 4012 (reconnect
# elsewhere) and exits. --proxy-headers: client addresses from nginx's X-Forwarded-For.
# The endpoint string sets the listen queue (docs/deploy.md, "Crowds").
CMD ["daphne", "-e", "tcp:8000:interface=0.0.0.0:backlog=4096", "--proxy-headers", "chatsite.asgi:application"]
