"""Hydra callbacks (``hydra.callbacks.<name>._target_``): things to do around a whole run or multirun.

:class:`ActivationStatsFigure` draws the combined activation-statistics figure of a multirun once all its jobs have
finished; ``configs/experiment/init_study.yaml`` registers it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("trainlab")


class ActivationStatsFigure(Callback):
    """At the end of a multirun, write ``<sweep dir>/activation_stats.png`` from the jobs' ``activation_stats.json``
    (:func:`trainlab.activation_figures.combined_figure`). A failure is logged, never raised: the jobs are done."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            from trainlab.activation_figures import combined_figure

            combined_figure(Path(config.hydra.sweep.dir))
        except Exception as err:  # noqa: BLE001 - a figure must not fail a finished sweep
            log.warning(f"combined activation statistics figure failed: {type(err).__name__}: {err}")
