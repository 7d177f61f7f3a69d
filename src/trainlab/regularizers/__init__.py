"""Regularizers selected with ``regularizer=[...]``: loss penalties and the layers models build from them."""
