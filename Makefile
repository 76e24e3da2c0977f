# The two commands of the contract: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 4

.PHONY: run test lint format bench bench-layers cluster cluster-stop clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

## run: serve the site on http://127.0.0.1:8000 (SQLite, in-process channel layer by default)
run: $(VENV)/.installed
	CHATSITE_DEV=1 $(BIN)/python manage.py migrate --noinput
	CHATSITE_DEV=1 $(BIN)/daphne -b $(HOST) -p $(PORT) chatsite.asgi:application

## test: the whole suite (real Redis, PostgreSQL, nginx and Chromium where available)
test: $(VENV)/.installed-dev
	CHATSITE_DEV=1 $(BIN)/pytest --durations=15 $(TESTS)

## lint: ruff and mypy
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CHATSITE_DEV=1 $(BIN)/mypy rooms/services.py rooms/moderation.py rooms/audit.py rooms/admin.py rooms/search.py rooms/protocol.py rooms/fanout.py rooms/routing.py rooms/numbering.py rooms/presence.py rooms/ratelimit.py rooms/selectors.py chatsite/server/ chatsite/postgresql/base.py chatsite/sqlite3/base.py chatsite/dbmetrics.py rooms/sockets.py rooms/session.py rooms/consumers.py rooms/streams.py rooms/metrics.py chatsite/metrics.py rooms/signals.py accounts/throttle.py accounts/validators.py rooms/mentions.py rooms/attachments.py rooms/api.py

## bench: the standard load scenarios (under five minutes); writes docs/performance.md
bench: $(VENV)/.installed-dev
	CHATSITE_DEV=1 $(BIN)/python -m bench.run

## bench-layers: the channel-layer comparison; writes its section of docs/scaling.md
bench-layers: $(VENV)/.installed-dev
	CHATSITE_DEV=1 $(BIN)/python -m bench.run --only two-core,two-pubsub --merge

## bench-routing: CHATSITE_ROUTING broadcast against rooms, 4 workers; writes its section of docs/scaling.md
bench-routing: $(VENV)/.installed-dev
	CHATSITE_DEV=1 $(BIN)/python -m bench.run --only routing --merge

## cluster: WORKERS daphne workers behind nginx on http://127.0.0.1:8080 (PostgreSQL + Redis)
cluster: $(VENV)/.installed-dev
	$(BIN)/python -m deploy.cluster start --workers $(WORKERS)

cluster-stop:
	$(BIN)/python -m deploy.cluster stop

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3* test-db.sqlite3* staticfiles artifacts
