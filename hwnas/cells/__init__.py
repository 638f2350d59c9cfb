"""Differentiable cell search (DARTS, DOTS, EoiNAS, MS-DARTS) over one DARTS cell space.

``darts_space`` (ops, mixed op, cells, networks), ``genotype`` (JSON + plot), ``classification_data``
(digits, CIFAR folders), one module per method, ``cell_search`` (the shared loop),
``genotype_training`` (a genotype from scratch), ``backbone`` (a genotype as the SOD pyramid).
Nothing heavy is imported here.
"""
