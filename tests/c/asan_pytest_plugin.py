"""pytest plugin for the sanitizer run (tests/test_sanitizers.py): refuse to
run unless ``irqd._core`` is the ASan+UBSan build in build/asan, so a path
mix-up cannot turn the sanitizer run into a plain one."""

import os


def pytest_configure(config):
    import irqd._core

    where = os.path.realpath(irqd._core.__file__)
    want = os.path.realpath(os.environ["IRQD_ASAN_DIR"])
    if not where.startswith(want + os.sep):
        raise RuntimeError(f"irqd._core comes from {where}, not the ASan build in {want}")
    print(f"asan plugin: irqd._core = {where}")
