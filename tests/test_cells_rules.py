"""Each cell-search method's rule pinned on tiny, hand-computed inputs."""

import math

import pytest
import torch

from hwnas.cells import dots, eoinas, msdarts
from hwnas.cells.genotype import Genotype
from hwnas.cells.cell_search import CellSearchConfig, derive_top2
from hwnas.cells.darts_space import NONE_INDEX, PRIMITIVES, SearchNetwork, edge_index, num_edges


def _tiny(method_cls, epochs=8, **options):
    torch.manual_seed(0)
    net = SearchNetwork(channels=4, num_classes=10, layers=3)
    cfg = CellSearchConfig(method=method_cls.name, epochs=epochs, channels=4, layers=3, options=options)
    return method_cls(net, cfg, steps_per_epoch=5)


# ---------------------------------------------------------------- DOTS


def test_dots_combination_counts():
    assert len(dots.topology_combinations(5)) == 10  # C(5, 2)
    assert len(dots.topology_combinations(5, any_count=True)) == 31  # 2^5 - 1
    assert dots.topology_combinations(3) == [(0, 1), (0, 2), (1, 2)]


def test_dots_gamma_eq_2_7_pairs_by_hand():
    # softmax(β/T) = (0.2, 0.3, 0.5) over the pairs (0,1), (0,2), (1,2) with T = 2
    temp = 2.0
    beta = temp * torch.log(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    gamma = dots.edge_gamma(beta, dots.topology_combinations(3), 3, temp)
    # γ_0 = (0.2 + 0.3)/2, γ_1 = (0.2 + 0.5)/2, γ_2 = (0.3 + 0.5)/2
    assert gamma.tolist() == pytest.approx([0.25, 0.35, 0.40], abs=1e-12)


def test_dots_gamma_eq_2_7_arbitrary_edges_by_hand():
    # subsets (0,), (1,), (0,1) with probabilities 0.5, 0.2, 0.3: the pair splits its weight over 2 edges
    beta = torch.log(torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64))
    gamma = dots.edge_gamma(beta, dots.topology_combinations(2, any_count=True), 2, 1.0)
    assert gamma.tolist() == pytest.approx([0.5 + 0.15, 0.2 + 0.15], abs=1e-12)


def test_dots_annealing_schedule():
    assert dots.temperature(0) == pytest.approx(10.0)
    assert dots.temperature(1) == pytest.approx(7.2)
    assert dots.temperature(3) == pytest.approx(10 * 0.72**3)  # 3.73248
    m = _tiny(dots.Dots, epochs=7)  # op stage = round(3/7 · 7) = 3 epochs
    assert m.op_epochs == 3
    m.begin_epoch(3)
    assert m.in_topology_stage and m.temperature() == pytest.approx(10.0)
    m.begin_epoch(5)
    assert m.temperature() == pytest.approx(10 * 0.72**2)


def test_dots_group_softmax_sums_each_group_to_one():
    alpha = torch.randn(14, 8)
    w = dots.group_softmax(alpha)
    assert w[:, dots.FREE_IDX].sum(1).tolist() == pytest.approx([1.0] * 14)
    assert w[:, dots.PARAM_IDX].sum(1).tolist() == pytest.approx([1.0] * 14)


def test_dots_derive_best_combination_and_never_none():
    m = _tiny(dots.Dots, epochs=4)
    with torch.no_grad():
        m.alpha_normal.zero_()
        m.alpha_normal[:, NONE_INDEX] = 10.0  # none dominates the parameter-free group everywhere ...
        m.alpha_normal[:, PRIMITIVES.index("max_pool_3x3")] = 1.0  # ... so max-pool is the kept free op
        m.alpha_normal[:, PRIMITIVES.index("sep_conv_5x5")] = 2.0  # and the stronger of the kept pair
        for b in m.beta_normal:
            b.zero_()
        m.beta_normal[2][m.combos[2].index((1, 3))] = 5.0  # node 2: edges from c_{k-1} and node 1
    g = m.genotype()
    assert g.normal[2] == (("sep_conv_5x5", 1), ("sep_conv_5x5", 3))
    assert all(op != "none" for cell in (g.normal, g.reduce) for node in cell for op, _ in node)
    assert all(len(node) == 2 for node in g.normal)


# ---------------------------------------------------------------- EoiNAS


def test_eoinas_indicator_eq_10_by_hand():
    alive = torch.tensor([[True, True, False]])
    acc_param = torch.tensor([[0.0, math.log(3.0), 99.0]])  # softmax over live ops: 0.25, 0.75
    alpha = torch.tensor([[0.0, 0.0, 99.0]])  # softmax over live ops: 0.5, 0.5
    i = eoinas.importance(acc_param, alpha, alive)
    assert i.tolist()[0] == pytest.approx([0.25 + 0.5 * 0.5, 0.75 + 0.5 * 0.5, 0.0])
    assert eoinas.importance(acc_param, alpha, alive, use_oii=False).tolist()[0] == pytest.approx([0.5, 0.5, 0.0])


def test_eoinas_accuracy_parameter_is_accuracy_over_epochs_trained():
    m = _tiny(eoinas.EoiNAS)  # 5 steps per epoch
    m.val_acc_sum[0, 0, 4] = 1.6  # two val batches at 0.8 when sep_conv_3x3 was sampled
    m.val_count[0, 0, 4] = 2
    m.train_count[0, 0, 4] = 10  # trained in 10 steps = 2 epochs
    c = m.accuracy_parameter()
    assert c[0, 0, 4].item() == pytest.approx(0.8 / 2)
    assert c[0, 0, 5].item() == 0.0  # never trained


def test_eoinas_transition_update():
    q0 = torch.full((2, 2), 0.5)
    rise = eoinas.adjust_transition(q0, torch.tensor(1.0))
    fall = eoinas.adjust_transition(q0, torch.tensor(-1.0))
    assert rise.flatten().tolist() == pytest.approx([0.52, 0.48, 0.51, 0.49])
    assert fall.flatten().tolist() == pytest.approx([0.48, 0.52, 0.49, 0.51])
    same = eoinas.adjust_transition(q0, torch.tensor(0.0))
    assert same.flatten().tolist() == pytest.approx([0.5] * 4)


def test_eoinas_high_order_markov_state_by_hand():
    x0, x1 = torch.tensor([0.5, 0.5]), torch.tensor([0.6, 0.4])
    qa = torch.full((2, 2), 0.5)
    qb = torch.tensor([[0.52, 0.48], [0.51, 0.49]])
    sigma = eoinas.sigma_weights(prunes_done=0, available=2)
    assert sigma.tolist() == pytest.approx([0.5, 0.5])
    x = eoinas.markov_state([x0, x1], [qa, qb], sigma)
    # 0.5·(0.6, 0.4)·Qb + 0.5·(0.5, 0.5)·Qa = 0.5·(0.516, 0.484) + 0.5·(0.5, 0.5)
    assert x.tolist() == pytest.approx([0.508, 0.492])
    assert eoinas.sigma_weights(0, 10).tolist() == pytest.approx([0.25] * 4)
    later = eoinas.sigma_weights(2, 4).tolist()
    assert later == sorted(later, reverse=True) and sum(later) == pytest.approx(1.0) and later[0] > 0.25


def test_eoinas_pruning_schedule():
    assert eoinas.warmup_epochs(160) == 20
    assert eoinas.pruning_epochs(160) == [40, 60, 80, 100, 120, 140, 160]  # the paper's schedule
    assert eoinas.pruning_epochs(8) == [2, 3, 4, 5, 6, 7, 8]
    assert eoinas.pruning_epochs(4) == [2, 2, 3, 3, 4, 4, 4]
    for total in (1, 2, 3, 5, 9, 17, 40):
        ep = eoinas.pruning_epochs(total)
        assert len(ep) == 7 and ep == sorted(ep) and ep[-1] == total and ep[0] > eoinas.warmup_epochs(total)


def test_eoinas_prunes_highest_dead_probability_down_to_one_op():
    m = _tiny(eoinas.EoiNAS)
    dead = torch.zeros(2, num_edges(), 8)
    order = [3, 6, 1, 7, 2, 5, 4, 0]  # op index ranked from most to least "dead" on every edge
    for rank, op in enumerate(order):
        dead[..., op] = 0.9 - 0.1 * rank
    m.x_hist[-1] = torch.stack([1 - dead, dead], dim=-1)
    indicator = m.indicator()
    m.prune_once(indicator)
    assert not m.alive[..., 3].any() and m.alive.sum(-1).eq(7).all()
    for _ in range(6):
        m.prune_once(indicator)
    assert m.alive.sum(-1).eq(1).all()
    # only none (op 0) and sep_conv_3x3 (op 4) were left for the last round; none went although 4 looked deader
    assert m.alive[..., 4].all()


def test_eoinas_chain_off_prunes_lowest_indicator():
    m = _tiny(eoinas.EoiNAS, markov=False)
    indicator = torch.arange(8, dtype=torch.float32).expand(2, num_edges(), 8).clone()
    indicator[..., 5] = -1.0
    m.prune_once(indicator)
    assert not m.alive[..., 5].any() and m.alive.sum(-1).eq(7).all()


def test_eoinas_gumbel_sample_respects_pruned_ops_and_is_straight_through():
    alive = torch.zeros(14, 8, dtype=torch.bool)
    alive[:, 2] = alive[:, 6] = True
    alpha = torch.zeros(14, 8, requires_grad=True)
    w, idx = eoinas.gumbel_sample(alpha, alive, tau=1.0)
    assert set(idx.tolist()) <= {2, 6}
    assert w.detach().sum(1).tolist() == pytest.approx([1.0] * 14)
    w[torch.arange(14), idx].sum().backward()
    assert alpha.grad.abs().sum() > 0


# ---------------------------------------------------------------- MS-DARTS


def test_msdarts_update_equals_weighted_kernel_formula():
    torch.manual_seed(0)
    alpha = torch.tensor([0.3, -0.2], dtype=torch.float64)
    samples = alpha + 0.1 * torch.randn(3, 2, dtype=torch.float64)
    target = torch.tensor([1.0, 1.0], dtype=torch.float64)
    losses = ((samples - target) ** 2).sum(1)  # toy loss ‖A − (1, 1)‖²
    h = 0.1
    omega = torch.exp(losses) / torch.exp(losses).sum()
    kernel = torch.exp(-((samples - alpha) ** 2).sum(1) / (2 * h * h))
    expected = (omega[:, None] * kernel[:, None] * samples).sum(0) / (omega * kernel).sum()
    got = msdarts.mean_shift_update(alpha, samples, losses, h)
    assert torch.allclose(got, expected, atol=1e-12)


def test_msdarts_iterations_repeat_sampling_around_the_shifted_alpha():
    alpha = torch.tensor([0.3, -0.2], dtype=torch.float64)

    def loss(a):
        return float(((a - 1.0) ** 2).sum())

    got = msdarts.mean_shift(alpha, loss, num_samples=3, iterations=2, bandwidth=0.05,
                             generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    current = alpha.clone()
    for _ in range(2):
        samples = current + (torch.rand((3, 2), generator=g, dtype=torch.float64) * 2 - 1) * 0.05
        losses = torch.tensor([loss(s) for s in samples], dtype=torch.float64)
        current = msdarts.mean_shift_update(current, samples, losses, 0.05)
    assert torch.allclose(got, current)
    assert not torch.allclose(got, alpha)


# ---------------------------------------------------------------- DARTS


def test_darts_derive_top2_skips_none():
    w = torch.full((num_edges(), 8), 0.01)
    w[:, NONE_INDEX] = 0.9  # none is the largest weight everywhere and must be ignored
    w[edge_index(3, 4), PRIMITIVES.index("dil_conv_5x5")] = 0.5
    w[edge_index(3, 0), PRIMITIVES.index("skip_connect")] = 0.4
    w[edge_index(3, 2), PRIMITIVES.index("avg_pool_3x3")] = 0.3
    nodes = derive_top2(w, 4)
    assert nodes[3] == (("skip_connect", 0), ("dil_conv_5x5", 4))
    g = Genotype(nodes, nodes)
    assert all(op != "none" for node in g.normal for op, _ in node)
