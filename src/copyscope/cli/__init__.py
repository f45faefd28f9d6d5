"""The command line: thin Typer commands over the library.

Errors in the user's input arrive as CopyscopeError and are printed as one sentence; ``--debug``
(anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from copyscope.cli import audit, compress, data, report, sample, study, text, train, webapp
from copyscope.cli.common import console, error
from copyscope.errors import CopyscopeError

app = typer.Typer(
    help="copyscope: does this generative model store copies of its training data?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(data.app, name="data")
app.add_typer(text.app, name="text")
app.add_typer(compress.app, name="compress")
app.command("audit")(audit.audit_command)
app.command("report")(report.report_command)
app.command("train")(train.train_command)
app.command("sample")(sample.sample_command)
app.command("run")(study.run_command)
app.command("app")(webapp.app_command)


def main() -> None:
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except CopyscopeError as e:
        if debug:
            raise
        error("error", str(e))
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; finished work is kept, run the same command again to resume.")
        sys.exit(130)
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        error("error", f"{where}{e.strerror or e}.")
        sys.exit(2)
    except Exception as e:  # a bug: still one sentence, with the way to see more
        if debug:
            raise
        error("internal error", f"{type(e).__name__}: {e} (run again with --debug for the "
              "traceback).")
        sys.exit(3)
