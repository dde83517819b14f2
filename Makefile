# The README's two commands:  `make run`  (serve on the offline model)  and  `make test`.
PYTHON ?= python3
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: run test bench bench-peers bench-ledger soak abuse mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(TSTAMP): $(STAMP) pyproject.toml scripts/install-test-deps tests/clients-requirements.txt
	$(PY) -m pip install --quiet -e '.[test]'
	$(PYTHON) -m venv .venv-clients
	.venv-clients/bin/python -m pip install --quiet -r tests/clients-requirements.txt
	scripts/install-test-deps
	touch $@

run: $(STAMP)
	$(VENV)/bin/rtproxy serve --config config.toml

test: $(TSTAMP)
	$(PY) -m pytest

$(VENV)/.installed-bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

# The gateway's bytecode compiled first, as `pip install` leaves an installed package (and the
# peers' are): an editable install under PYTHONDONTWRITEBYTECODE would compile at every start-up.
bench: $(VENV)/.installed-bench
	$(PY) -m compileall -q rtproxy
	$(PY) bench/run.py
	@echo "== the same connect and voice scenarios with the Redis state store =="
	$(PY) bench/run.py --state redis --scenarios s3,s5 --s3-sessions 50,200
	$(PY) bench/state_store.py

# rtproxy beside LiteLLM and the Portkey gateway (bench/peers.py): installs them pinned under
# .cache/peers/ (never part of `make test`), runs make bench's scenarios against each and writes
# docs/benchmarks.md (about 20 minutes).
bench-peers: $(VENV)/.installed-bench
	$(PY) -m compileall -q rtproxy
	$(PY) bench/peers.py

# The spend ledger at scale (bench/ledger.py): SQLite with 2 million records, then a throwaway
# PostgreSQL (the test install step brings it) with 2 million (--records 10000000 for the issue's 10 million).
bench-ledger: $(TSTAMP)
	$(PY) bench/ledger.py
	$(PY) bench/ledger.py --backend postgres --records 2000000

soak: $(VENV)/.installed-bench $(TSTAMP)
	$(PY) bench/soak.py

abuse: $(VENV)/.installed-bench $(TSTAMP)
	$(PY) bench/abuse.py

# Mutation testing of the sans-IO cores ([tool.mutmut] in pyproject.toml); not part of `make test`.
mutation: $(TSTAMP)
	$(PY) -m pip install --quiet 'mutmut>=3.3,<4'
	rm -rf mutants
	RTPROXY_MUTATION=1 $(VENV)/bin/mutmut run > mutation.log 2>&1 || (tail -20 mutation.log; exit 1)
	$(PY) scripts/mutation-report

clean:
	rm -rf $(VENV) .venv-clients .pytest_cache mutants mutation.log
