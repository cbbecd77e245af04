"""irqd daemon (placeholder until the daemon issue lands)."""

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="irqd", description="POWER XICS interrupt controller daemon")
    p.add_argument("--socket", help="listening socket path")
    p.parse_args(argv)
    print("irqd: the daemon is not built yet (see issue 4); the C core is usable as irqd.Xics", file=sys.stderr)
    return 1
