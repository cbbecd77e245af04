# make demo: the VM in a box (irqd.sim).  Starts two irqd daemons, runs the
# simulated VM (4 vCPUs, 64 MSI and 8 level devices, IPIs, RTAS masking) on
# the first for a few seconds, migrates it to the second mid-run, and prints
# the report: interrupts fired / delivered / lost / duplicated per kind,
# per-vCPU latency percentiles from fire to H_XIRR, migration downtime.  The
# report is also written to $(DEMO_DIR)/report.txt (and .json); it fails
# (exit 1) if anything was lost or wrongly duplicated.
#
#   make demo                  the run above
#   make demo PLOT=1           also $(DEMO_DIR)/report.png (latency CDF per vCPU,
#                              throughput over time with the migration window);
#                              installs matplotlib (the `plot` extra) first
#   make demo DEMO_ARGS="--seconds 10 --mode drain"   see python -m irqd.sim --help

DEMO_DIR  ?= build/demo
DEMO_ARGS ?= --seconds 4
PLOT      ?=
DEMO_PLOT := $(if $(PLOT)$(findstring --plot,$(DEMO_ARGS)),--plot)
# the `plot` extra's requirement, read from pyproject.toml (one source of truth)
PLOT_REQ   = $(shell $(VPY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['plot']))")

demo: build
ifneq ($(DEMO_PLOT),)
	@$(VPY) -c "import matplotlib" 2>/dev/null || $(VPY) -m pip install -q $(PLOT_REQ)
endif
	@mkdir -p $(DEMO_DIR)
	$(VPY) -m irqd.sim --demo $(filter-out --plot,$(DEMO_ARGS)) $(DEMO_PLOT) --report $(DEMO_DIR)/report.txt
