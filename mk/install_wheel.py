"""`make install` helper: install irqd's wheel for a given interpreter and prefix.

Two jobs, so the Makefile need not guess any interpreter's layout:

  PYTHON mk/install_wheel.py sitedir PREFIX
      run by the *target* interpreter: print the directory it imports
      packages from under PREFIX (Debian's python3 reads
      /usr/local/lib/python3.X/dist-packages and /usr/lib/python3/dist-packages,
      upstream CPython PREFIX/lib/python3.X/site-packages).

  VENV-PYTHON mk/install_wheel.py install WHEEL --interpreter PATH
      --sitedir DIR --bindir DIR [--destdir DIR]
      unpack WHEEL with pypa/installer into DESTDIR/SITEDIR, its console
      scripts into DESTDIR/BINDIR with PATH in their #! line, and a
      correct RECORD.  (pip's --prefix cannot do this on Debian, whose
      default scheme inserts /local: --prefix /usr/local lands in
      /usr/local/local.)
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig


def sitedir(prefix: str) -> str:
    prefix = os.path.normpath(prefix)
    for path in sys.path:
        path = os.path.normpath(path)
        if path.startswith(prefix + "/lib/") and path.endswith(("/site-packages", "/dist-packages")):
            return path
    # Not an interpreter's own prefix: the standard layout (the user then
    # needs PYTHONPATH; `make install` says so).
    return sysconfig.get_path("purelib", "posix_prefix", vars={"base": prefix, "platbase": prefix})


def install(args: argparse.Namespace) -> None:
    from installer import install as unpack
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    datadir = os.path.dirname(os.path.dirname(args.bindir.rstrip("/"))) or "/"  # BINDIR's prefix
    scheme = {
        "purelib": args.sitedir,
        "platlib": args.sitedir,
        "scripts": args.bindir,
        "data": datadir,
        "headers": os.path.join(datadir, "include", "irqd"),
    }
    destination = SchemeDictionaryDestination(
        scheme,
        interpreter=args.interpreter,
        script_kind="posix",
        destdir=args.destdir or None,
        overwrite_existing=True,
    )
    with WheelFile.open(args.wheel) as source:
        unpack(source, destination, {"INSTALLER": b"irqd make install\n"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sitedir")
    s.add_argument("prefix")
    i = sub.add_parser("install")
    i.add_argument("wheel")
    i.add_argument("--interpreter", required=True)
    i.add_argument("--sitedir", required=True)
    i.add_argument("--bindir", required=True)
    i.add_argument("--destdir", default="")
    args = p.parse_args()
    if args.cmd == "sitedir":
        print(sitedir(args.prefix))
    else:
        install(args)


if __name__ == "__main__":
    main()
