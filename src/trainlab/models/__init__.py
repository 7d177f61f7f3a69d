"""Networks: plain ``nn.Module`` classes built from the ``model`` config group."""
