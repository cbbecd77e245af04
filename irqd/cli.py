"""irqctl (placeholder until the daemon issue lands)."""

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="irqctl", description="control an irqd daemon")
    p.parse_args(argv)
    print("irqctl: no daemon to talk to yet (see issue 4)", file=sys.stderr)
    return 1
