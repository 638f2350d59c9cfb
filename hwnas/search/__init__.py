"""iNAS latency-group-sampling (LGS) evolutionary search (thesis §3.2.3, Algorithm 1).

- :mod:`hwnas.search.sampling` — layer-wise uniform and latency-group sampling;
- :mod:`hwnas.search.evolution` — Algorithm 1: groups, per-group Pareto selection, crossover,
  mutation, iterations, fitness cache, checkpoint/resume (``search(space, latency_ms, fitness, config)``);
- :mod:`hwnas.search.pareto` — non-dominated sorting, crowding distance, 2-D hypervolume;
- :mod:`hwnas.search.fitness` — supernet fitness (subnet + BN recalibration + SOD metric) and LUT latency;
- :mod:`hwnas.search.predictor` — accuracy predictors (MLP, gradient-boosted trees, ridge, Gaussian process) that pre-screen offspring;
- :mod:`hwnas.search.distributed` — candidate evaluation spread over the ranks of a torchrun job;
- :mod:`hwnas.search.report` — population.csv, pareto/*.json, search.json, the Pareto plot;
- :mod:`hwnas.search.synthetic` — LUT-like latency and synthetic fitness for tests and benchmarks.

Heavy dependencies (torch, the LUT) are imported where used, so ``import hwnas.search`` is light.
"""

from hwnas.search.errors import SearchError
from hwnas.search.evolution import Candidate, SearchConfig, SearchResult, latency_range, search

__all__ = ["Candidate", "SearchConfig", "SearchError", "SearchResult", "latency_range", "search"]
