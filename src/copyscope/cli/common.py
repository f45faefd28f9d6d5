"""What the commands share: the console and the SPEC help text."""

from rich.console import Console

console = Console(stderr=False)

SPEC_HELP = ("mnist:train, mnist:test, a slice such as mnist:train[:300], a .npy/.npz file, an IDX "
             "file, a folder of PNG/JPEG images, or a run directory")
