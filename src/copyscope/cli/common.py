"""What the commands share: the console, the one way values reach it, and the SPEC help text.

Anything a user typed or named (paths, SPECs, run and model names, error messages that quote
them) reaches the console as plain text, never as Rich markup: :func:`say` and :func:`markup`
escape every value they fill into a template, and :func:`error` prints a message with markup off.
A path such as ``x[/]y.npy`` or ``[bold red]oops.npy`` is printed as it is.
"""

import string
import sys

from rich.console import Console
from rich.markup import escape
from rich.text import Text

# Rich assumes 80 columns when output goes to a file or a pipe (make demo's log, CI); the study
# table needs about 150, so it is given 160 there instead of being cut to ellipses. Emoji codes
# are off: ``:smile:`` in a file name stays as it is.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160, emoji=False)

SPEC_HELP = ("mnist:train, mnist:test, a slice such as mnist:train[:300], a .npy/.npz file, an IDX "
             "file, a folder of PNG/JPEG images, or a run directory")


class _Escaped(string.Formatter):
    """str.format that escapes each filled-in value (after its format spec) for Rich."""

    def format_field(self, value: object, format_spec: str) -> str:
        return escape(super().format_field(value, format_spec))


_ESCAPED = _Escaped()


def markup(template: str, /, **values: object) -> str:
    """``template`` (our own Rich markup, str.format fields) with ``values`` as plain text."""
    return _ESCAPED.format(template, **values)


def say(template: str, /, **values: object) -> None:
    """Print ``template`` with ``values`` filled in as plain text (see :func:`markup`)."""
    console.print(markup(template, **values), highlight=False, soft_wrap=True)


def error(label: str, message: str) -> None:
    """``label`` in bold red, then ``message`` exactly as it is (no markup, no emoji)."""
    console.print(Text.assemble((f"{label}:", "bold red"), " ", message), highlight=False,
                  soft_wrap=True)
