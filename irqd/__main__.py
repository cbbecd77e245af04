"""``python -m irqd`` is the daemon, exactly as the ``irqd`` command."""

from irqd.daemon import main

raise SystemExit(main())
