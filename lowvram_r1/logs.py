"""Log set-up for our processes (the CLI, the panel's Try-it child): our INFO lines, library chatter only on ask."""

from __future__ import annotations

import logging
import os


def quiet_libraries(verbose: bool) -> None:
    """Our INFO lines and the progress bar; library chatter (per-map bars, CPU-kernel notices) only with -v."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("lowvram_r1").setLevel(logging.INFO)
    if not verbose:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
