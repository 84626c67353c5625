"""``python -m rtmw.train`` is ``rtmw-train``."""

from rtmw.cli.train import main

main()
