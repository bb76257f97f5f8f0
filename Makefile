# The two commands of the README. Each sets up what is missing (.venv/, and as root the system parts) itself.
.PHONY: demo test setup system

PY := .venv/bin/python

setup:
	@scripts/setup-venv

system:
	@scripts/install-system-deps

demo: setup
	$(PY) -m daf_hydra.run pipeline=benchmark

test: setup system
	@scripts/run-tests
