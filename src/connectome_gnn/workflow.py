"""Glue for Snakemake scripts: log redirection and clean error reporting."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError, Interrupted
from .layout import set_aside_checkpoints  # noqa: F401 - re-exported (moved to layout)

CLEAN_ERRORS = (ConfigError, DataError, FileNotFoundError)


def run_logged(log_path: str | Path, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run ``fn`` with stdout/stderr appended to ``log_path``.

    Known input problems (bad config, missing or corrupt files) are written as one line naming
    the field or file and end the process with exit status 1, without a traceback.  A job
    stopped by a signal after checkpointing (:class:`~connectome_gnn.io.Interrupted`) exits with
    128 + the signal number, so the scheduler retries it.  Anything else is logged with its
    traceback and re-raised.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", buffering=1) as log:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        try:
            return fn(*args, **kwargs)
        except Interrupted as exc:
            print(f"INTERRUPTED: {exc}", file=log)
            print(f"INTERRUPTED: {exc}", file=old_err)
            log.flush()
            os._exit(exc.exit_code)
        except CLEAN_ERRORS as exc:
            print(f"ERROR: {exc}", file=log)
            print(f"ERROR: {exc}", file=old_err)
            log.flush()
            os._exit(1)
        except Exception:
            traceback.print_exc(file=log)
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
