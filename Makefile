# Quick start: `make demo` runs the main job, `make test` runs the test suite.
# Each sets up .venv on first use (scripts/bootstrap.sh).
.PHONY: demo test lint bench setup
OUT ?= demo_out

setup:
	@scripts/bootstrap.sh

demo: setup
	.venv/bin/diffbio demo --out $(OUT)

test: setup
	.venv/bin/python -m pytest -n 2 --dist loadfile -q

lint: setup
	.venv/bin/ruff check diffbio tests benchmarks experiments
	.venv/bin/ruff format --check diffbio tests benchmarks experiments
