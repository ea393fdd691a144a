# ClickMe: `make run` starts everything for development, `make test` runs the whole suite.
# Both install into .venv first and can be run any number of times.

VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
MODEL_PORT ?= 8001
DEMO_CHECKPOINT := model_server/checkpoints/demo.pt
# Tests run with production settings (DEBUG off), so they need a key; never used elsewhere.
TEST_SECRET_KEY := test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz
MODEL_SERVER_URL ?= http://127.0.0.1:$(MODEL_PORT)
export PORT MODEL_PORT MODEL_SERVER_URL

.PHONY: install run test lint bench load chaos prod-local clean cotrain-demo promotion-bench evolve-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt model_server/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned to the 2.13.0 CPU wheel in model_server/requirements.txt.
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Development configuration: DEBUG on and a fresh random key, written once and then kept.
.env:
	$(PY) -c "import secrets; print('DEBUG=1'); print('SECRET_KEY=' + secrets.token_urlsafe(50))" > $@
	@echo "wrote .env (development settings; see .env.example for every variable)"

$(DEMO_CHECKPOINT): | install
	$(PY) -m model_server.train --demo --out $@

run: install .env $(DEMO_CHECKPOINT)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --admin-password admin --no-progress
	@echo
	@echo "  ClickMe is running at http://127.0.0.1:$(PORT)/"
	@echo "  Admin: http://127.0.0.1:$(PORT)/admin/  (user admin, password admin)"
	@echo "  Partner model server: http://127.0.0.1:$(MODEL_PORT)/v2/health/ready"
	@echo "  Stop with Ctrl-C."
	@echo
	$(VENV)/bin/honcho --procfile Procfile.dev start $$(grep -qs '^REDIS_URL=.' .env && echo "web model worker beat" || echo "web model sweeper")

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=$${SECRET_KEY:-$(TEST_SECRET_KEY)} $(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks print tables with ratios measured side by side in one run (never timed tests).
# They use the settings from the environment (.env or DATABASE_URL) and write under var/bench.
bench: install .env $(DEMO_CHECKPOINT)
	$(PY) manage.py migrate --noinput
	$(PY) -m bench.serving --checkpoint $(DEMO_CHECKPOINT)
	$(PY) manage.py bench_game
	$(PY) manage.py bench_maps
	$(PY) manage.py bench_exports
	$(PY) -m bench.promotion_load --checkpoint $(DEMO_CHECKPOINT)

# Promoting the partner while clients ask for guesses without pause: zero failed requests expected (docs/evolution.md).
promotion-bench: install $(DEMO_CHECKPOINT)
	$(PY) -m bench.promotion_load --checkpoint $(DEMO_CHECKPOINT)

# Real-time players ramped up against the production stack on this machine (bench/, docs/load-testing.md).
# A benchmark, never a timed test: prints players, rounds/s, guess p50/p99, errors, CPU per round per process, floor ratio.
LOAD_ARGS ?=
load: install $(DEMO_CHECKPOINT)
	$(PY) -m bench.ramp $(LOAD_ARGS)

# The fault suite (bench/chaos.py, docs/operations.md): the production stack on a private Postgres, simulated
# players, and in turn a SIGKILLed worker, Redis down 30 s, the model server down 60 s, Postgres restarted.
# Prints a table per fault; fails on any round lost or scored twice, any unexpected 5xx, any map unlike a rebuild.
CHAOS_ARGS ?=
chaos: install $(DEMO_CHECKPOINT)
	$(PY) -m bench.chaos $(CHAOS_ARGS)

# The production stack as docker-compose.yml runs it, on this machine (Procfile.prod; needs DATABASE_URL and
# REDIS_URL in the environment or .env, DEBUG off). Stop with Ctrl-C.
prod-local: install $(DEMO_CHECKPOINT)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput
	$(VENV)/bin/honcho --procfile Procfile.prod start

# The shortcut demonstration (docs/training.md): human maps from simulated players through the game's HTTP API,
# then plain vs co-trained GALA networks; writes var/cotrain-demo/results.md, results.json and results.png.
COTRAIN_ARGS ?=
cotrain-demo: install
	$(PY) -m bench.cotrain_demo $(COTRAIN_ARGS)

# The partner evolves (docs/evolution.md): generation 0 trained on the cue images, then per generation simulated
# players through the game's HTTP API, evolve_partner (export, co-train, evaluate, gate, promote);
# writes var/evolve-demo/results.md and results.png (about 27 min on 2 cores).
EVOLVE_ARGS ?=
evolve-demo: install
	$(PY) -m bench.evolve_demo $(EVOLVE_ARGS)

clean:
	rm -rf var staticfiles
