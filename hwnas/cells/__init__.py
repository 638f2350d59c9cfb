"""Differentiable cell search (DARTS, DOTS, EoiNAS, MS-DARTS) over one DARTS cell space.

``space`` (ops, mixed op, cells, networks), ``genotype`` (JSON + plot), ``data`` (digits, CIFAR
folders), one module per method, ``search`` (the shared loop), ``train`` (a genotype from scratch).
Nothing heavy is imported here.
"""
