"""Two-objective Pareto tools: non-dominated sorting, crowding distance, 2-D hypervolume.

Objectives are given as ``(cost, score)`` pairs: latency in ms is minimised, the fitness (e.g.
max-F) is maximised. Non-dominated sorting follows NSGA-II (Deb et al., 2002); for two objectives
a sort by cost and a sweep is enough, so fronts cost O(n log n) each.
"""

from __future__ import annotations

import math
from typing import Sequence

Point = tuple[float, float]  # (cost to minimise, score to maximise)


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` in both objectives and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, ordered by increasing cost.

    Exact duplicates do not dominate each other, so all copies of a front point are kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_score = -math.inf
    best_cost = math.nan
    for i in order:
        cost, score = points[i]
        if score > best_score:
            front.append(i)
            best_score, best_cost = score, cost
        elif score == best_score and cost == best_cost:
            front.append(i)  # a duplicate of the last front point
    return front


def non_dominated_sort(points: Sequence[Point]) -> list[list[int]]:
    """Successive Pareto fronts: front 0 is non-dominated, front 1 is non-dominated once 0 is removed, ..."""
    remaining = list(range(len(points)))
    fronts: list[list[int]] = []
    while remaining:
        local = pareto_front([points[i] for i in remaining])
        front = [remaining[j] for j in local]
        fronts.append(front)
        taken = set(front)
        remaining = [i for i in remaining if i not in taken]
    return fronts


def crowding_distance(points: Sequence[Point], indices: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of ``indices`` (one front) — larger = more isolated; ends get inf."""
    dist = {i: 0.0 for i in indices}
    if len(indices) <= 2:
        return {i: math.inf for i in indices}
    for axis in (0, 1):
        ordered = sorted(indices, key=lambda i: points[i][axis])
        lo, hi = points[ordered[0]][axis], points[ordered[-1]][axis]
        dist[ordered[0]] = dist[ordered[-1]] = math.inf
        if hi == lo:
            continue
        for prev, cur, nxt in zip(ordered, ordered[1:], ordered[2:]):
            dist[cur] += (points[nxt][axis] - points[prev][axis]) / (hi - lo)
    return dist


def select_by_fronts(points: Sequence[Point], indices: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` of ``indices``: whole successive fronts, the last one cut by crowding distance.

    Deterministic (ties broken by cost, then index), so a resumed search selects the same parents.
    """
    sub = [points[i] for i in indices]
    chosen: list[int] = []
    for front in non_dominated_sort(sub):
        members = [indices[j] for j in front]
        if len(chosen) + len(members) <= count:
            chosen.extend(members)
        else:
            crowd = crowding_distance(points, members)
            members.sort(key=lambda i: (-crowd[i], points[i][0], i))
            chosen.extend(members[: count - len(chosen)])
        if len(chosen) >= count:
            break
    return chosen


def hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    """Area dominated by ``points`` and bounded by ``reference`` = (worst cost, worst score).

    Points worse than the reference in either objective contribute nothing.
    """
    ref_cost, ref_score = reference
    useful = [(c, s) for c, s in points if c < ref_cost and s > ref_score]
    if not useful:
        return 0.0
    front = [useful[i] for i in pareto_front(useful)]  # increasing cost, increasing score
    area = 0.0
    for j, (cost, score) in enumerate(front):
        next_cost = front[j + 1][0] if j + 1 < len(front) else ref_cost
        area += (next_cost - cost) * (score - ref_score)
    return area
