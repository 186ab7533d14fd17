"""Known-answer tests of the gradient-variance analyser (docs/theory.md)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from femlm.errors import FemlmError
from femlm.masking.show import builtin_tokenizer
from femlm.model import mlm_loss_sum
from femlm.variance.analyser import VarianceConfig, analyse, format_table, measure, variance_terms
from femlm.variance.gradients import ViewGradients, analysis_mode, select_parameters, view_batch
from femlm.variance.results import ProbeTerms, VarianceResult
from femlm.variance.stats import Arm, Measurement, Part, bootstrap, finish_hamming, moments
from femlm.variance.table import recommendation


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls on a shared 2-core machine run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    return builtin_tokenizer()


def random_sequences(tok, n: int, content: int, seed: int) -> list[torch.Tensor]:
    """``[CLS] + content random ordinary tokens + [SEP]``: exactly ``content`` maskable."""
    gen = torch.Generator().manual_seed(seed)
    ordinary = torch.tensor([i for i in range(len(tok)) if i not in tok.all_special_ids])
    rows = []
    for _ in range(n):
        body = ordinary[torch.randint(len(ordinary), (content,), generator=gen)]
        rows.append(
            torch.cat([torch.tensor([tok.cls_token_id]), body, torch.tensor([tok.sep_token_id])])
        )
    return rows


def tiny_bert(tok, seed: int = 0) -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    return BertForMaskedLM(config)


# --- the estimators on gradients with a known covariance ---------------------------


def synthetic_part(
    S: int, R: int, K: int, P: int, lam: float, gen: torch.Generator, a: float = 0.5
) -> Part:
    """Views ``g = mu_s + 2 (z_k - lam * mean_k z)`` per draw, ``mu_s ~ N(0, a^2 I)``.

    ``lam = 0``: independent views; ``lam = 1``: views summing to ``K mu_s`` exactly.
    """
    mu = a * torch.randn(S, 1, 1, P, generator=gen, dtype=torch.float64)
    z = 2.0 * torch.randn(S, R, K, P, generator=gen, dtype=torch.float64)
    grads = mu + z - lam * z.mean(2, keepdim=True)
    mv, s2, means = zip(*(moments(g) for g in grads), strict=True)
    stacked = torch.stack(means)
    return Part(torch.tensor(mv), torch.tensor(s2), stacked @ stacked.T)


def synthetic_measurement(S, R, K, P, lam, gen, a=0.5) -> Measurement:
    """Random-K and fully-explored arms at rate 1/K, with the same V_data = P a^2."""
    m = Measurement({}, {})
    for name, lam_s in (("random", 0.0), ("fully-explored", lam)):
        part = synthetic_part(S, R, K, P, lam_s, gen, a)
        m.configured[Arm(name, 1 / K)] = m.mask_only[Arm(name, 1 / K)] = part
    return m


def test_estimators_recover_a_known_covariance_within_their_intervals():
    S, R, K, P, lam, a2, sig2 = 120, 6, 7, 40, 0.8, 0.25, 4.0
    m = synthetic_measurement(S, R, K, P, lam, torch.Generator().manual_seed(0))
    cfg = VarianceConfig(views=K, draws=R, bootstrap=400, confidence=0.99)
    res = bootstrap(m, ["random", "fully-explored"], cfg, torch.Generator().manual_seed(1))
    rnd, fe = res.terms("random"), res.terms("fully-explored")
    truth = {
        "pooled V_data": (res.comparison("fully-explored").v_data, P * a2),
        "random's own V_data": (rnd.v_data, P * a2),
        "random sigma2": (rnd.sigma2, P * sig2),
        "random maskvar": (rnd.maskvar, P * sig2 / K),
        "random C": (rnd.C, 0.0),
        "FE sigma2": (fe.sigma2, P * sig2 * (1 - 2 * lam / K + lam**2 / K)),
        "FE C": (fe.C, P * sig2 * (lam**2 - 2 * lam) / K),
        "FE maskvar": (fe.maskvar, P * sig2 * (1 - lam) ** 2 / K),
        "FE ratio": (fe.ratio, (1 - lam) ** 2),
    }
    for key, (e, value) in truth.items():
        assert e.low <= value <= e.high, (key, value, e)
        # An interval that wide would contain anything: it must be informative.
        assert e.high - e.low < 0.5 * max(abs(value), 0.2 * P * sig2 / K), (key, e)


@pytest.mark.parametrize("a2, fe_wins", [(0.15, True), (4.0, False)])
def test_step_variance_and_break_even_give_one_verdict_on_each_side_of_it(a2, fe_wins):
    # sigma2 = 4 P, FE maskvar = 4 P (1 - lam)^2 / K: break-even V_data is
    # (sigma2 - K maskvar) / (K - 1) = 4 P (1 - (1 - lam)^2) / (K - 1) = 0.64 P here,
    # so V_data = 0.15 P is below it (FE's step is less noisy) and 4 P above it.
    S, R, K, P, lam = 200, 6, 7, 30, 0.8
    gen = torch.Generator().manual_seed(3)
    m = synthetic_measurement(S, R, K, P, lam, gen, a=a2**0.5)
    cfg = VarianceConfig(views=K, draws=R, batch_size=4, bootstrap=200)
    res = bootstrap(m, ["random", "fully-explored"], cfg, torch.Generator().manual_seed(4))
    c = res.comparison("fully-explored")
    assert c.baseline == "random" and c.rate == pytest.approx(1 / K)
    assert (
        c.break_even_v_data.low
        <= 4 * P * (1 - (1 - lam) ** 2) / (K - 1)
        <= c.break_even_v_data.high
    )
    assert c.v_data.low <= P * a2 <= c.v_data.high
    # One V_data on both sides: the two verdicts are one inequality.
    assert (c.step_var_ratio.value < 1) == (c.v_data.value < c.break_even_v_data.value) == fe_wins
    assert (c.step_var.value < c.baseline_step_var.value) == fe_wins
    res.recommendation = recommendation(res)
    winner = res.recommendation.split(": ", 1)[1].split(",")[0]
    assert winner == ("fully-explored" if fe_wins else "random (B*K=28 sequences x 1 view")
    assert ("disjoint" in res.recommendation) == fe_wins


def test_recommendation_does_not_credit_disjoint_masks_to_independent_views():
    # Random-K (independent views) made lowest by hand: the reason must not be
    # disjoint masks, and its own one-view baseline is named.
    S, R, K, P = 60, 4, 4, 10
    m = synthetic_measurement(S, R, K, P, 0.5, torch.Generator().manual_seed(5), a=0.1)
    cfg = VarianceConfig(views=K, draws=R, batch_size=4, bootstrap=20)
    res = bootstrap(m, ["random", "fully-explored"], cfg, torch.Generator().manual_seed(6))
    rk = res.comparison("random")
    for c in res.comparisons:
        c.step_var = dataclasses.replace(c.step_var, value=c.step_var.value + 1e3)
        c.baseline_step_var = dataclasses.replace(c.baseline_step_var, value=1e9)
    rk.step_var = dataclasses.replace(rk.step_var, value=0.0)
    text = recommendation(res)
    assert text.split(": ", 1)[1].startswith("random, because")
    assert "disjoint" not in text and "independent" in text


def test_hamming_estimator_recovers_known_correlations():
    P, pairs, sig2 = 200, 50, 3.0
    rhos = torch.tensor([0.9, 0.5, 0.0, -0.4])
    gen = torch.Generator().manual_seed(2)
    mu = torch.randn(P, generator=gen, dtype=torch.float64) * 5  # large mean: must cancel
    e1 = torch.randn(len(rhos), pairs, P, generator=gen, dtype=torch.float64)
    z = torch.randn(len(rhos), pairs, P, generator=gen, dtype=torch.float64)
    r = rhos[:, None, None].double()
    e2 = r * e1 + (1 - r**2).sqrt() * z
    g = sig2**0.5 * torch.stack([e1, e2], 2) + mu  # [levels, pairs, 2, P]
    T = g.sum((0, 1, 2))
    A = float((g**2).sum())
    TL = g.sum((1, 2))
    X = (g[:, :, 0] * g[:, :, 1]).sum((1, 2))
    s2, cov = finish_hamming(T, A, TL, X, pairs)
    assert s2 == pytest.approx(P * sig2, rel=0.05)
    assert torch.allclose(cov / s2, rhos.double(), atol=0.06)


# --- per-view gradients -------------------------------------------------------------


def test_view_gradients_match_autograd_of_the_mean_view_loss(tok):
    model = tiny_bert(tok)
    ids = random_sequences(tok, 1, 20, seed=3)[0]
    masks = torch.zeros(3, len(ids), dtype=torch.bool)
    masks[0, [2, 5, 7]] = masks[1, [1, 9]] = masks[2, [3, 4, 11, 12, 13]] = True
    corrupted = torch.where(masks, tok.mask_token_id, ids)
    with analysis_mode(model):
        names = select_parameters(model)
        rows = {
            m: ViewGradients(model, names, m)(view_batch(ids, corrupted, masks))
            for m in ("vmap", "loop")
        }
        for v in range(3):
            labels = torch.where(masks[v], ids, -100)
            total, count = mlm_loss_sum(
                model, {"input_ids": corrupted[v : v + 1], "labels": labels[None]}
            )
            grads = torch.autograd.grad(total / count, list(model.parameters()))
            flat = torch.cat([g.reshape(-1) for g in grads]).double()
            for mode, g in rows.items():
                assert torch.allclose(g[v], flat, atol=1e-5, rtol=1e-4), mode


def test_parameter_filter(tok):
    model = tiny_bert(tok)
    names = select_parameters(model, ["encoder.layer.1."])
    assert names and all("encoder.layer.1." in n for n in names)
    with pytest.raises(FemlmError, match="no parameter name matches"):
        select_parameters(model, ["no-such-layer"])


# --- a model with no mixing across positions ---------------------------------------


class PositionWise(nn.Module):
    """Embedding + position embedding -> per-position MLP -> vocabulary.

    A token's loss depends only on its own (corrupted) input and position,
    so the loss summed over a partition of the positions is the same for every partition.
    """

    def __init__(self, vocab: int, length: int, hidden: int = 16) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, hidden), nn.Embedding(length, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, vocab))

    def forward(self, input_ids: torch.Tensor, **_: object) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
        return self.mlp(self.tok(input_ids) + self.pos(positions))


def test_position_wise_model_fully_explored_variance_vanishes(tok):
    # 24 maskable tokens, K = 4: equal segments of 6, the random budget too.
    torch.manual_seed(0)
    model = PositionWise(len(tok), 26)
    seqs = random_sequences(tok, 8, 24, seed=4)
    cfg = VarianceConfig(
        views=4, rate=0.25, draws=16, strategies=["random", "fully-explored"], progress=False
    )
    m = measure(model, seqs, tok, cfg, hamming=False)
    rnd, fe = Arm("random", 0.25), Arm("fully-explored", 0.25)
    sigma2 = m.mask_only[rnd].s2.mean()
    fe_bare = m.mask_only[fe].mv.mean()
    random_bare = m.mask_only[rnd].mv.mean()
    assert abs(fe_bare) < 1e-9 * sigma2  # floating-point level
    assert random_bare * 4 / sigma2 == pytest.approx(1.0, abs=0.2)
    # With 80/10/10 replacement, the redrawn replacement noise remains.
    assert m.configured[fe].mv.mean() > 1e-3 * m.configured[rnd].mv.mean()


# --- a tiny transformer ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_result(tok):
    model = tiny_bert(tok, seed=0)
    seqs = random_sequences(tok, 8, 40, seed=5)
    cfg = VarianceConfig(
        views=4, rate=0.25, draws=4, strategies=["random", "fully-explored"],
        hamming_pairs=4, bootstrap=200, progress=False,
    )  # fmt: skip
    return analyse(model, seqs, tok, cfg)


def test_tiny_transformer_fully_explored_below_random(tiny_result):
    fe = tiny_result.terms("fully-explored")
    assert fe.ratio.high < 0.7, fe.ratio
    # replacement noise is what disjoint masks leave
    assert fe.ratio_no_replacement.value < fe.ratio.value


def test_tiny_transformer_covariance_falls_with_hamming_distance(tiny_result):
    dist = tiny_result.setup["distances"]
    assert dist == [0, 4, 10, 16, 20]  # m = 10: overlaps 10, 8, 5, 2, 0 (round half to even)
    assert list(tiny_result.hamming) == dist
    curve = [tiny_result.hamming[d].value for d in dist]
    assert 0.5 < curve[0] < 1.0  # below 1: the replacement is redrawn per view
    assert curve[0] - curve[-1] > 0.5, curve
    assert all(b < a + 0.1 for a, b in zip(curve, curve[1:], strict=False)), curve


def test_table_json_and_plots(tiny_result, tmp_path):
    from femlm.variance.plots import plot_hamming, plot_variance

    table = format_table(tiny_result)
    last = table.splitlines()[-1]
    assert last.startswith("fully-explored / random mask-variance ratio (K=4): ")
    assert "lowest step variance" in table
    back = VarianceResult.from_json(json.loads(json.dumps(tiny_result.to_json())))
    assert back == tiny_result
    assert back.comparison("fully-explored").baseline_step_var.value > 0
    plot_variance(tiny_result, tmp_path / "v.png")
    plot_hamming(tiny_result, tmp_path / "h.png")
    assert (tmp_path / "v.png").stat().st_size > 1000 and (tmp_path / "h.png").stat().st_size > 1000


def test_variance_terms_is_cheap_and_restores_mode(tok):
    model = tiny_bert(tok).train()
    seqs = random_sequences(tok, 4, 21, seed=6)
    terms = variance_terms(model, seqs, tok, draws=2)
    assert model.training
    assert isinstance(terms, ProbeTerms) and terms.views == 7
    row = terms.to_row()
    assert all(isinstance(v, float) for v in row.values())
    assert ProbeTerms.from_row({"step": 3, **row}) == terms


@pytest.mark.parametrize("views", [2, 3])
def test_two_views_are_not_mistaken_for_hamming_pairs(tok, views):
    # K = 2 once hit the Hamming-pair bookkeeping (chunks of 2 gradients).
    model = tiny_bert(tok)
    terms = variance_terms(model, random_sequences(tok, 4, 21, seed=7), tok, draws=2, views=views)
    assert terms.ratio > 0 and terms.views == views


def test_config_fields_have_help():
    for f in dataclasses.fields(VarianceConfig):
        assert f.metadata.get("help"), f.name


def test_run_variance_end_to_end(tok, tmp_path):
    from femlm.variance.analyser import run_variance

    tok.save_pretrained(tmp_path / "tok")
    words = (
        "the model predicts masked tokens and each view of the text makes a noisy gradient".split()
    )
    gen = torch.Generator().manual_seed(7)
    lines = [
        " ".join(words[int(i)] for i in torch.randint(len(words), (60,), generator=gen))
        for _ in range(40)
    ]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    cfg = VarianceConfig(
        model="tiny", tokenizer=str(tmp_path / "tok"), data=[str(tmp_path / "corpus.txt")],
        max_length=32, cache_dir=str(tmp_path / "cache"), split="train", sequences=3, draws=2,
        strategies=["random", "fully-explored"], hamming_pairs=1, bootstrap=10, views=4,
        out_dir=str(tmp_path / "out"), progress=False,
    )  # fmt: skip
    result = run_variance(cfg)
    assert result.setup["sequences"] == 3
    for name in ("variance.json", "variance_by_strategy.png", "covariance_vs_hamming.png"):
        assert (tmp_path / "out" / name).is_file()


def part_with(v_data: float, mv: float, s2: float, R: int) -> Part:
    """Three sequences whose estimated V_data, mask variance and sigma2 are exactly these."""
    c = (v_data + mv / R) ** 0.5
    means = torch.tensor([[c], [-c], [0.0]], dtype=torch.float64)
    full = torch.full((3,), 1.0, dtype=torch.float64)
    return Part(mv * full, s2 * full, means @ means.T)


def test_each_comparison_pools_one_v_data_for_both_sides():
    # adaptive's case: random's own V_data (0.715) above FE's break-even (~0.68), FE's
    # own V_data below it. With a V_data per side the step variance called FE lower
    # while V_data said standard; one pooled V_data gives one answer.
    K, R, B, s2 = 7, 8, 4, 33.5
    fe_mv = (s2 - (K - 1) * 0.68) / K  # break-even V_data 0.68
    m = Measurement({}, {})
    arms = {Arm("random", 1 / K): (0.715, s2 / K), Arm("fully-explored", 1 / K): (0.40, fe_mv)}
    for arm, (vd, mv) in arms.items():
        m.configured[arm] = m.mask_only[arm] = part_with(vd, mv, s2, R)
    cfg = VarianceConfig(views=K, draws=R, batch_size=B, bootstrap=2)
    c = bootstrap(m, ["random", "fully-explored"], cfg, torch.Generator()).comparison(
        "fully-explored"
    )
    assert c.v_data.value == pytest.approx((0.715 + 0.40) / 2)
    assert c.break_even_v_data.value == pytest.approx(0.68)
    assert c.step_var.value == pytest.approx((c.v_data.value + fe_mv) / B)
    assert c.baseline_step_var.value == pytest.approx((c.v_data.value + s2) / (B * K))
    assert c.step_var_ratio.value < 1 and c.v_data.value < c.break_even_v_data.value


def test_k_view_strategies_meet_the_one_view_baseline_of_their_marginal():
    from femlm.variance.stats import plan_arms

    arms = plan_arms(["random", "fully-explored", "fully-explored-span", "span"], 7, None)
    assert arms == [
        Arm(s, 1 / 7) for s in ("random", "fully-explored", "fully-explored-span", "span")
    ]
    # A rate for the other strategies adds the arms FE's comparisons need at 1/K.
    arms = plan_arms(["random", "fully-explored"], 7, 0.15)
    assert arms == [Arm("random", 0.15), Arm("fully-explored", 1 / 7), Arm("random", 1 / 7)]


def test_auto_mode_falls_back_to_the_loop_where_vmap_cannot_trace(tok, monkeypatch):
    model = tiny_bert(tok)
    ids = random_sequences(tok, 1, 20, seed=3)[0]
    masks = torch.zeros(2, len(ids), dtype=torch.bool)
    masks[0, [2, 5]] = masks[1, [1, 9]] = True
    batch = view_batch(ids, torch.where(masks, tok.mask_token_id, ids), masks)
    with analysis_mode(model):
        names = select_parameters(model)
        expected = ViewGradients(model, names, "loop")(batch)
        auto = ViewGradients(model, names, "auto")

        def untraceable(self, b):  # what transformers 4.x's attention-mask code does
            raise RuntimeError("vmap: It looks like you're calling .item() on a Tensor")

        monkeypatch.setattr(ViewGradients, "_vmap", untraceable)
        assert torch.equal(auto(batch), expected) and auto.mode == "loop"


def test_an_explicit_vmap_mode_that_cannot_trace_is_a_one_line_error(tok, monkeypatch):
    from femlm.errors import FemlmError

    model = tiny_bert(tok)
    ids = random_sequences(tok, 1, 20, seed=3)[0]
    masks = torch.zeros(1, len(ids), dtype=torch.bool)
    masks[0, 2] = True
    batch = view_batch(ids, torch.where(masks, tok.mask_token_id, ids), masks)

    def untraceable(self, b):
        raise RuntimeError("vmap: It looks like you're calling .item() on a Tensor")

    with analysis_mode(model):
        grads = ViewGradients(model, select_parameters(model), "vmap")
        monkeypatch.setattr(ViewGradients, "_vmap", untraceable)
        with pytest.raises(FemlmError, match="use --grad-mode loop or auto"):
            grads(batch)

        def bug(self, b):  # any other failure is ours and keeps its traceback
            raise RuntimeError("shape mismatch")

        monkeypatch.setattr(ViewGradients, "_vmap", bug)
        with pytest.raises(RuntimeError, match="shape mismatch"):
            grads(batch)


def test_across_epochs_is_measured_through_the_fully_explored_partition():
    from femlm.variance.analyser import strategy_list
    from femlm.variance.results import Estimate
    from femlm.variance.table import across_epochs_line

    assert strategy_list(["fully-explored-epochs", "span"]) == ["random", "fully-explored", "span"]
    line = across_epochs_line(Estimate(0.35, 0.3, 0.4), 7)
    assert "step variance is standard's" in line and "0.35 [0.3, 0.4]" in line
