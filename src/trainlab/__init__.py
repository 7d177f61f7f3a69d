"""trainlab: the techniques of the "Training Neural Networks" lecture as Lightning + Hydra config choices.

Importing the package is cheap on purpose: torch and Lightning load only inside the entry points, after Hydra
has answered `--help` / `--cfg`.
"""

from pathlib import Path

__version__ = "0.1.0"

#: the config tree every console script composes from (``configs/`` at the repository root; the package is
#: installed in editable mode from the repository)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
