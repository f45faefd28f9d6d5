"""What the commands share: the console and the SPEC help text."""

import sys

from rich.console import Console

# Rich assumes 80 columns when output goes to a file or a pipe (make demo's log, CI); the study
# table needs about 150, so it is given 160 there instead of being cut to ellipses.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)

SPEC_HELP = ("mnist:train, mnist:test, a slice such as mnist:train[:300], a .npy/.npz file, an IDX "
             "file, a folder of PNG/JPEG images, or a run directory")
