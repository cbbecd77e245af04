# make install [DESTDIR=/tmp/stage] [PREFIX=/usr/local] [INSTALL_PYTHON=/usr/bin/python3]
#
#   install       = install-python + install-data
#   install-python  builds irqd's wheel (with the C core) in .venv and unpacks
#                   it for $(INSTALL_PYTHON) (default: the $(PYTHON) that made
#                   .venv): the package into the directory that interpreter
#                   imports from under $(PREFIX) (PYTHONDIR), the `irqd` and
#                   `irqctl` scripts into $(BINDIR) with it in their #!.
#                   Its runtime dependencies (cffi, pyroute2 0.9) are not
#                   installed: they come from the distribution or pip.
#   install-data    the systemd units (ExecStart= rewritten to $(BINDIR)/irqd),
#                   the sysusers.d snippet creating user/group irqd, the README.
#                   Needs nothing but sed and install(1): packagers who build
#                   the Python part with their own tooling (or a venv, see the
#                   README) run only this one, with BINDIR= where irqd is.
#
# Nothing here touches the running system (no systemctl, no systemd-sysusers):
# the README's "Run as a service" lists those steps.

INSTALL_PYTHON ?= $(PYTHON)
PREFIX         ?= /usr/local
DESTDIR        ?=
BINDIR         ?= $(PREFIX)/bin
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
DOCDIR         ?= $(PREFIX)/share/doc/irqd
# Where the package goes; empty: where $(INSTALL_PYTHON) imports from under $(PREFIX).
PYTHONDIR      ?=
# Extra flags for the wheel build, e.g. --no-build-isolation for an offline build.
PIP_WHEEL_FLAGS ?=

INSTALL_BUILD := build/install
INSTALLER     := $(VENV)/.installer-pkg

.PHONY: install install-python install-data install-wheel

install: install-python install-data

$(INSTALLER): $(STAMP)
	$(VPY) -m pip install -q 'installer>=0.7'
	touch $@

install-wheel: $(STAMP)
	rm -rf $(INSTALL_BUILD)/wheel
	flock build.lock $(VPY) -m pip wheel -q --no-deps $(PIP_WHEEL_FLAGS) -w $(INSTALL_BUILD)/wheel .

install-python: install-wheel $(INSTALLER)
	@set -e; \
	interp="$$($(INSTALL_PYTHON) -I -c 'import sys; print(sys.executable)')"; \
	sitedir="$(PYTHONDIR)"; \
	[ -n "$$sitedir" ] || sitedir="$$($(INSTALL_PYTHON) -I mk/install_wheel.py sitedir $(PREFIX))"; \
	echo "installing irqd for $$interp into $(DESTDIR)$$sitedir, scripts into $(DESTDIR)$(BINDIR)"; \
	$(VPY) mk/install_wheel.py install $(INSTALL_BUILD)/wheel/irqd-*.whl \
	  --interpreter "$$interp" --sitedir "$$sitedir" --bindir $(BINDIR) --destdir "$(DESTDIR)"; \
	$(INSTALL_PYTHON) -I -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "$$sitedir" || \
	  echo "note: $$interp does not import from $$sitedir: set PYTHONPATH, or install with PREFIX=its own prefix"; \
	$(INSTALL_PYTHON) -I -c 'import cffi, pyroute2' 2>/dev/null || \
	  echo "note: $$interp lacks cffi or pyroute2 (irqd needs cffi>=1.16, pyroute2>=0.9,<0.10)"

# Units name /usr/bin/irqd and /usr/share/doc/irqd; point them at this install.
install-data:
	@mkdir -p $(INSTALL_BUILD)/systemd
	sed -e 's|/usr/bin/irqd|$(BINDIR)/irqd|g' -e 's|/usr/share/doc/irqd|$(DOCDIR)|g' \
	  systemd/irqd.service > $(INSTALL_BUILD)/systemd/irqd.service
	sed -e 's|/usr/share/doc/irqd|$(DOCDIR)|g' systemd/irqd.socket > $(INSTALL_BUILD)/systemd/irqd.socket
	install -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)
	install -m 0644 $(INSTALL_BUILD)/systemd/irqd.service $(INSTALL_BUILD)/systemd/irqd.socket $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 0644 systemd/sysusers.d/irqd.conf $(DESTDIR)$(SYSUSERSDIR)/irqd.conf
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
