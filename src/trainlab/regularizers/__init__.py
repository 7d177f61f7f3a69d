"""Regularizers selected with ``regularizer=[...]``: loss penalties and the layers models build from them.

Three kinds, listed in :mod:`trainlab.combinations`: weight penalties added to the loss (l1, l2, elastic_net:
:mod:`trainlab.regularizers.penalties`); layers a network builds from its constructor argument of the same name
(dropout, alpha_dropout, dropconnect, fractional_pool, stochastic_depth); and transforms of the training batch and
its targets (mixup, cutmix, label_smoothing: :mod:`trainlab.regularizers.mixing`).

Dropout (Srivastava et al. 2014, ``regularizer=[dropout]``) is torch's ``nn.Dropout``: ``regularizer.dropout.p`` is
the probability of DROPPING a unit, and the survivors are scaled by 1/(1-p) in training ("inverted dropout"), so the
layer is the identity at test time. The lecture's p is the KEEP probability, with the scaling at test time: lecture
p=0.8 is ``regularizer.dropout.p=0.2`` here (p=0.5 is the same in both). The networks place it after every hidden
activation (MLP), after the hidden fully connected layer (CNN), and before the classifier (ResNet).

AlphaDropout (Klambauer et al. 2017, ``regularizer=[alpha_dropout]``) is torch's ``nn.AlphaDropout``, in the same
places: it keeps the zero mean and unit variance of SELU's activations, so it goes with ``activation=selu``.
"""
