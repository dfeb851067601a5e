"""Quiet model loading: no tqdm bars on stderr while our code loads a model.

transformers 5 draws a ``Loading weights`` tqdm bar for every ``from_pretrained`` (and the hub
a bar per download); in ``mm-assets run`` they interleave with the progress lines. This silences
them only around our own loads (:func:`quiet_model_loading`, used by
:func:`mm_assets.core.quality.lm.load_lm` and the MiniLM text encoder), through transformers'
and huggingface_hub's own switches, and restores the previous state afterwards: a user's
notebook or script keeps its bars everywhere else. Not thread-safe (the switches are process
globals); our loads happen once per process, before the work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Disable transformers' and huggingface_hub's progress bars inside the block, then put
    both switches back as they were (also when the block raises)."""
    try:
        from huggingface_hub.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )
        from transformers.utils import logging as hf_logging
    except ImportError:  # neither library installed: nothing draws bars
        yield
        return
    bars_on = hf_logging.is_progress_bar_enabled()
    hub_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # also turns the hub's off
    try:
        yield
    finally:
        if bars_on:
            hf_logging.enable_progress_bar()  # also turns the hub's on
        if hub_off:
            disable_progress_bars()
        else:
            enable_progress_bars()
