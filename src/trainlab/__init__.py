"""trainlab: the techniques of the "Training Neural Networks" lecture as Lightning + Hydra config choices.

Importing the package is cheap on purpose: torch and Lightning load only inside the entry points, after Hydra
has answered `--help` / `--cfg`.
"""

__version__ = "0.1.0"
