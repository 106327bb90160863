# Shortcuts for the scripts the README names.
.PHONY: run test bench
run:
	./scripts/dev
test:
	./scripts/test
bench:
	./scripts/test --version >/dev/null && .venv/bin/python bench/run.py
