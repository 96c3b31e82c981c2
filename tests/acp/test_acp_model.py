"""ACP's network: shapes, attention directions, ablation switches, focal loss, overfitting, model figures."""
import dataclasses
import math

import pytest
import torch

from rerankbench.acp.config import ACP_BASIC, AcpConfig
from rerankbench.acp.figures import macs_per_sequence, parameter_count
from rerankbench.acp.loss import focal_loss, ranking_loss
from rerankbench.acp.model import AcpModel, relations

BLOCKS = (6, 10, 12)  # tiny stand-ins for C3, C4, C5
TINY = AcpConfig(layers=2, slots=3, heads=2, d_memory=4, d=8, dropout=0.0)
B, L, K2 = 4, 7, 3


def tiny_model(config=TINY, seed=0):
    torch.manual_seed(seed)
    return AcpModel(config, BLOCKS).eval()


def sequences(seed=1):
    return torch.randn(B, L, sum(BLOCKS), generator=torch.Generator().manual_seed(seed))


def test_every_module_keeps_its_shapes():
    model, x = tiny_model(), sequences()
    x_fused = model.fusion(x)
    assert x_fused.shape == (B, L, TINY.d)
    z = model.encoder[1](model.encoder[0](x_fused))
    assert z.shape == (B, L, TINY.d)
    memory, init_weights = model.memory(z)
    assert memory.shape == (B, TINY.slots, TINY.d) and init_weights.shape == (B, TINY.slots, L)
    refined = model.refinement(memory, z[:, :K2])
    assert refined.shape == (B, TINY.slots, TINY.d)
    rebuilt, rebuild_weights = model.reconstruction(z, refined)
    assert rebuilt.shape == (B, L, TINY.d) and rebuild_weights.shape == (B, TINY.heads, L, TINY.slots)
    assert model(x, K2).shape == (B, L)


def test_memory_queries_come_from_the_probe_alone():
    model, z = tiny_model(), torch.randn(B, L, TINY.d)
    others_changed = z.clone()
    others_changed[:, 1:] = torch.randn(B, L - 1, TINY.d)
    probe_changed = z.clone()
    probe_changed[:, 0] += 1.0
    queries = model.memory.queries(z)
    assert queries.shape == (B, TINY.slots, TINY.d_memory)
    assert torch.equal(model.memory.queries(others_changed), queries)
    assert not torch.allclose(model.memory.queries(probe_changed), queries)
    assert not torch.allclose(model.memory(others_changed)[0], model.memory(z)[0])  # keys and values: every neighbour
    weights = model.memory(z)[1]
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(B, TINY.slots))  # over the k1 neighbours


def test_refinement_slots_attend_over_the_first_k2_neighbours():
    model, seen = tiny_model(), []
    model.refinement.attention.register_forward_hook(lambda module, inputs, output: seen.append(output[1]))
    model(sequences(), K2)
    (weights,) = seen
    assert weights.shape == (B, TINY.heads, TINY.slots, K2)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(B, TINY.heads, TINY.slots))
    assert not torch.allclose(weights.sum(dim=-2), torch.ones(B, TINY.heads, K2))


def encoded(model, x):
    z = model.fusion(x)
    for layer in model.encoder:
        z = layer(z)
    return z


def test_full_model_keeps_the_reconstruction_without_a_residual():
    model, x = tiny_model(), sequences()
    z = encoded(model, x)
    memory = model.refinement(model.memory(z)[0], z[:, :K2])
    rebuilt = model.reconstruction(z, memory)[0]
    torch.testing.assert_close(model(x, K2), model.classifier(rebuilt).squeeze(-1))
    assert not torch.allclose(model(x, K2), model.classifier(z + rebuilt).squeeze(-1))


def test_memory_off_sends_the_encoder_output_to_the_classifier():
    model, x = tiny_model(AcpConfig(**{**TINY.__dict__, "memory": False})), sequences()
    assert not hasattr(model, "memory")
    torch.testing.assert_close(model(x, K2), model.classifier(encoded(model, x)).squeeze(-1))


def test_refinement_off_uses_the_initialised_memory():
    model, x = tiny_model(AcpConfig(**{**TINY.__dict__, "refinement": False})), sequences()
    z = encoded(model, x)
    want = model.classifier(model.reconstruction(z, model.memory(z)[0])[0]).squeeze(-1)
    torch.testing.assert_close(model(x, K2), want)
    torch.testing.assert_close(model(x, 1), model(x, L))  # k2 no longer matters
    full = tiny_model()
    assert not torch.allclose(full(x, 1), full(x, L))


def test_encoder_off_feeds_the_fused_features_to_the_memory():
    model, x = tiny_model(AcpConfig(**{**TINY.__dict__, "encoder": False})), sequences()
    assert len(model.encoder) == 0 and len(tiny_model().encoder) == TINY.layers
    z = model.fusion(x)
    memory = model.refinement(model.memory(z)[0], z[:, :K2])
    torch.testing.assert_close(model(x, K2), model.classifier(model.reconstruction(z, memory)[0]).squeeze(-1))


def test_fusion_off_reads_c5_alone():
    x = sequences()
    shallow_changed = x.clone()
    shallow_changed[..., :BLOCKS[0] + BLOCKS[1]] = torch.randn(B, L, BLOCKS[0] + BLOCKS[1])
    c5_only = tiny_model(AcpConfig(**{**TINY.__dict__, "fusion": False}))
    assert c5_only.fusion.fc.in_features == BLOCKS[-1]
    torch.testing.assert_close(c5_only(shallow_changed, K2), c5_only(x, K2))
    fused = tiny_model()
    assert fused.fusion.fc.in_features == sum(BLOCKS)
    assert not torch.allclose(fused(shallow_changed, K2), fused(x, K2))


def test_fusion_is_scaled_l2_normalisation_then_fc_and_bn():
    model, x = tiny_model(), sequences()
    with torch.no_grad():
        for gamma in model.fusion.scales:
            gamma.fill_(3.0)
    blocks = x.split(BLOCKS, dim=-1)
    normalised = torch.cat([3.0 * f / f.norm(dim=-1, keepdim=True) for f in blocks], dim=-1)
    norm = model.fusion.norm
    want = (model.fusion.fc(normalised) - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * norm.weight + norm.bias
    torch.testing.assert_close(model.fusion(x), want)
    torch.testing.assert_close(model.fusion(10.0 * x), model.fusion(x))  # only directions count


def test_focal_loss_against_a_hand_worked_value():
    logits, labels = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[1.0, 0.0]])
    # p = (0.5, 1 - 0.75): 0.5^2 * ln 2 + 0.75^2 * ln 4
    want = 0.25 * math.log(2.0) + 0.5625 * math.log(4.0)
    assert focal_loss(logits, labels, gamma=2.0).item() == pytest.approx(want, rel=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    assert focal_loss(logits, labels, gamma=0.0).item() == pytest.approx(bce.item(), rel=1e-6)
    assert focal_loss(torch.tensor([[30.0]]), torch.tensor([[1.0]]), 2.0).item() < 1e-20


def test_ranking_loss_against_a_hand_worked_value_and_a_plain_loop():
    # one sequence, true at 0 and 2 (z = 1, 0), false at 1 (z = 2): pairs (0, 1) and (2, 1)
    logits, labels = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[1.0, 0.0, 1.0]])
    want = (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(2.0))) / 2
    assert ranking_loss(logits, labels).item() == pytest.approx(want, rel=1e-6)
    # a batch: sequences without both kinds are left out of the mean
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=g)
    labels = (torch.rand(5, 7, generator=g) < 0.4).float()
    labels[3] = 1.0  # all true: no pair
    per_sequence = []
    for z, y in zip(logits.tolist(), labels.tolist()):
        pairs = [math.log(1 + math.exp(z[j] - z[i])) for i in range(7) for j in range(7) if y[i] and not y[j]]
        if pairs:
            per_sequence.append(sum(pairs) / len(pairs))
    assert ranking_loss(logits, labels).item() == pytest.approx(sum(per_sequence) / len(per_sequence), rel=1e-6)
    none = ranking_loss(logits, torch.ones(5, 7))
    assert none.item() == 0.0 and none.requires_grad is logits.requires_grad


def test_a_small_model_overfits_a_handful_of_sequences():
    torch.manual_seed(0)
    model = AcpModel(AcpConfig(layers=1, slots=2, heads=2, d_memory=8, d=16, dropout=0.0), BLOCKS)
    x = torch.randn(4, 10, sum(BLOCKS))
    labels = (torch.rand(4, 10) < 0.5).float()
    labels[:, 0] = 1.0
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = focal_loss(model(x, 4), labels, gamma=2.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.01
    model.eval()
    assert torch.equal(model(x, 4) > 0, labels.bool())


def tiny_parameters(c, blocks):
    d, w, n, m = c.d, c.ffn_ratio * c.d, c.slots, c.d_memory
    attention = 4 * (d * d + d)
    layer = attention + (d * w + w) + (w * d + d) + 2 * 2 * d
    fusion = sum(blocks) + sum(blocks) * d + d + 2 * d
    memory = 3 * (d * n * m + n * m) + 1 + n * m * d + n * d + 2 * n * d
    return fusion + c.layers * layer + memory + layer + attention + d + 1


def tiny_macs(c, blocks, k1, k2):
    d, w, n, m = c.d, c.ffn_ratio * c.d, c.slots, c.d_memory
    encoder_layer = 4 * k1 * d * d + 2 * k1 * k1 * d + 2 * k1 * d * w
    memory = d * n * m + 2 * k1 * d * n * m + 2 * n * k1 * m + n * m * d
    refinement = 2 * n * d * d + 2 * k2 * d * d + 2 * n * k2 * d + 2 * n * d * w
    reconstruction = 2 * k1 * d * d + 2 * n * d * d + 2 * k1 * n * d
    return k1 * sum(blocks) * d + c.layers * encoder_layer + memory + refinement + reconstruction + k1 * d


@pytest.mark.parametrize("k1", [5, 9])
def test_model_figures_match_a_count_by_hand(k1):
    model = tiny_model().train()
    assert parameter_count(model) == tiny_parameters(TINY, BLOCKS)
    assert macs_per_sequence(model, k1, K2) == tiny_macs(TINY, BLOCKS, k1, K2)
    assert model.training  # counted in eval mode, then put back


class OneLinear(torch.nn.Module):
    block_dims = (12,)

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(12, 5)

    def forward(self, x, refine_length):
        return self.linear(x)


def test_a_linear_layer_costs_in_times_out_per_token():
    assert macs_per_sequence(OneLinear(), 7) == 7 * 12 * 5


def test_acp_basic_has_the_papers_parameter_count():
    assert round(parameter_count(AcpModel(ACP_BASIC, (512, 1024, 2048))) / 1e6, 2) == 4.61


def test_relations_are_each_images_cosines_to_the_probe_and_to_the_rest():
    c5 = sequences()[..., -BLOCKS[-1]:].double()
    unit = c5 / c5.norm(dim=-1, keepdim=True)
    for b in range(B):
        for i in range(L):
            assert relations(c5)[b, i, 0].item() == pytest.approx(float(unit[b, i] @ unit[b, 0]), abs=1e-12)
            others = [float(unit[b, i] @ unit[b, j]) for j in range(L) if j != i]
            assert relations(c5)[b, i, 1].item() == pytest.approx(sum(others) / (L - 1), abs=1e-12)


def test_relations_enter_beside_the_fused_features_and_only_when_on():
    x = sequences()
    assert tiny_model().relations_of(x) is None and not any("relate" in k for k in tiny_model().state_dict())
    model = tiny_model(dataclasses.replace(TINY, relations=True))
    z = model.fusion(x) + model.relate(relations(x[..., -BLOCKS[-1]:]))
    for layer in model.encoder:
        z = layer(z)
    memory = model.refinement(model.memory(z)[0], z[:, :K2])
    want = model.classifier(model.reconstruction(z, memory)[0]).squeeze(-1)
    torch.testing.assert_close(model(x, K2), want)
    shuffled = x.clone()
    shuffled[:, 1:, -BLOCKS[-1]:] = x[:, 1:, -BLOCKS[-1]:].flip(1)  # the same images, other cosines to the rest: no
    assert not torch.allclose(model(x, K2)[:, 1:].sort().values, model(shuffled, K2)[:, 1:].sort().values)


def test_a_paper_model_keeps_its_name_and_the_guards_are_named_when_on():
    assert TINY.recipe() == {k: v for k, v in dataclasses.asdict(TINY).items() if k != "relations"}
    assert dataclasses.replace(TINY, relations=True).recipe() == {**TINY.recipe(), "relations": True}
