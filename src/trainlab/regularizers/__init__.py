"""Regularizers selected with ``regularizer=[...]``, each a technique object (:mod:`trainlab.techniques`) named by
``_target_`` in ``configs/regularizer/<name>.yaml``. By where they act: weight penalties added to the loss
(``stage = "loss"``: l1, l2, elastic_net, :mod:`~trainlab.regularizers.penalties`); layers a network builds from its
constructor argument (``stage = "layer"``: dropout and alpha_dropout (:mod:`~trainlab.regularizers.dropout`),
dropconnect, fractional_pool, stochastic_depth); and transforms of the training batch and its targets
(``stage = "batch"``: mixup, cutmix, label_smoothing, :mod:`~trainlab.regularizers.mixing`).
"""
