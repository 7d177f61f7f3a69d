"""``hydra/sweeper=trainlab``: the Optuna sweep of :mod:`trainlab.sweep` as a Hydra ``Sweeper`` plugin."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class TrainlabSweeper(Sweeper):
    """Thin adapter: the work (and its documentation) is in :class:`trainlab.sweep.OptunaSweep`."""

    def __init__(self, **settings: Any) -> None:
        from trainlab.sweep import OptunaSweep

        self.impl = OptunaSweep(**settings)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.impl.sweep(arguments)
