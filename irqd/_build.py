"""cffi build of the C core (out-of-line API mode): ``irqd._core``.

The cdef is extracted from the marked blocks of the headers, so abi.h stays
the one source of truth; the compiler sees the whole headers and cffi checks
every declared struct layout and #define value against them.

Run directly (``python irqd/_build.py``) to build in place, or through
setup.py's ``cffi_modules``.
"""

from __future__ import annotations

import glob
import os
import re

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADERS = [
    os.path.join(ROOT, "include", "irqd", "abi.h"),
    os.path.join(ROOT, "irqd", "core", "xics.h"),
    os.path.join(ROOT, "irqd", "core", "wire.h"),
    os.path.join(ROOT, "irqd", "core", "ring.h"),
]
_BLOCK = re.compile(r"/\* IRQD-CDEF-BEGIN \*/(.*?)/\* IRQD-CDEF-END \*/", re.S)


def cdef_text(paths: list[str] = HEADERS) -> str:
    parts = []
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            blocks = _BLOCK.findall(f.read())
        if not blocks:
            raise SystemExit(f"{path}: no IRQD-CDEF block")
        parts.extend(blocks)
    text = "\n".join(parts)
    # string constants are for C only; cffi's cdef takes integer #defines
    return "\n".join(ln for ln in text.splitlines() if not re.match(r'\s*#define\s+\w+\s+"', ln))


def make_ffi(absolute: bool = False) -> FFI:
    """setuptools wants relative source paths; ffi.compile() runs in its tmpdir and needs absolute ones."""
    ffi = FFI()
    ffi.cdef(cdef_text())
    includes = "".join(f'#include "{os.path.relpath(h, ROOT)}"\n' for h in HEADERS if os.path.exists(h))
    sources = sorted(glob.glob(os.path.join(ROOT, "irqd", "core", "*.c")))
    ffi.set_source(
        "irqd._core",
        includes,
        sources=sources if absolute else [os.path.relpath(s, ROOT) for s in sources],
        include_dirs=[os.path.join(ROOT, "include"), ROOT],
        extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-fvisibility=hidden"],
        libraries=["pthread"],
    )
    return ffi


ffibuilder = make_ffi()

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder = make_ffi(absolute=True)
    ffibuilder.compile(tmpdir=os.path.join(ROOT, "build", "cffi"), verbose=False)
    # compile() leaves the module in tmpdir/irqd/: move it into the package
    import shutil
    import sysconfig

    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = os.path.join(ROOT, "build", "cffi", "irqd", "_core" + suffix)
    # copy then rename: overwriting the file in place would change the code
    # under every process that has the module loaded (seen: SIGSEGV)
    final = os.path.join(ROOT, "irqd", "_core" + suffix)
    tmp = f"{final}.{os.getpid()}.tmp"
    shutil.copy2(built, tmp)
    os.replace(tmp, final)
    print("built irqd/_core" + suffix)
