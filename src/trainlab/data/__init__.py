"""Data modules. Every data set trainlab ships fits in memory and is served by :class:`TensorLoader`."""
