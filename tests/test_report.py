"""``femlm report`` on hand-written experiment folders (no training)."""

import json
import math

import pytest

from femlm.report.plots import standard_at_views, views_ablation
from femlm.report.stats import compare
from femlm.report.writer import write_report

# Clear win, clear loss and a tie against `standard` (std 0.01 over 3 seeds).
FINALS = {
    "standard": [4.00, 4.01, 3.99],
    "fully-explored": [3.50, 3.51, 3.49],  # clear win
    "fe-K2": [4.50, 4.51, 4.49],  # clear loss
    "fe-K4": [4.05, 4.25, 3.85],  # +0.05, but seeds spread by 0.2: a tie
    "fe-allmask": [3.60, 3.61, 3.59],
}
RUNS = {
    "standard": {"strategy": "random", "views": 1, "rate": 0.15, "batch_size": 28},
    "fully-explored": {"strategy": "fully-explored", "views": 7, "batch_size": 4},
    "fe-K2": {"strategy": "fully-explored", "views": 2, "batch_size": 14},
    "fe-K4": {"rate": 0.25, "batch_size": 7},  # no strategy, no views: fully-explored, K = 4
    "fe-allmask": {"views": 7, "mask_prob": 1.0, "random_prob": 0.0},
}


def make_experiment(root, runs, finals, finetune=None):
    """Write experiment.json, metrics.jsonl per run and ``finetune`` {variant: {task: [json]}}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "experiment.json").write_text(
        json.dumps({"name": "synthetic", "base": {"lr": 0.002}, "runs": runs})
    )
    for variant, losses in finals.items():
        for seed, loss in enumerate(losses):
            folder = root / variant / f"seed-{seed}"
            folder.mkdir(parents=True)
            rows = [
                {"step": 0, "unigram_loss": 6.0},
                {"step": 0, "eval_loss": loss + 3, "elapsed": 0.0},
                {"step": 100, "eval_loss": loss + 0.5, "elapsed": 5.0},
                {"step": 200, "eval_loss": loss, "elapsed": 10.0},
            ]
            (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
            for task, results in (finetune or {}).get(variant, {}).items():
                (folder / f"finetune-{task}.json").write_text(
                    json.dumps(complete(results[seed], task))
                )
    return root


def complete(result, task="sst2"):
    """A fine-tuning result file with the fields a test leaves out filled in."""
    runs = [
        {"seed": i, "best_epoch": 1, "epochs_run": 1, "dev_accuracy": 0.5, "dev_macro_f1": 0.5,
         "seconds": 1.0, **r}
        for i, r in enumerate(result["runs"])
    ]  # fmt: skip
    return {
        "task": task, "model": "m", "labels": ["a", "b"], "split": "given",
        "splits": {"train": 1, "dev": 1, "test": 1}, "metric": "accuracy",
        "lr_search": [], **result, "runs": runs,
    }  # fmt: skip


def finetune_result(accuracies, lr=None):
    result = {"runs": [{"test_accuracy": a, "test_macro_f1": a - 0.1} for a in accuracies]}
    if lr is not None:
        result["lr"] = lr
        result["lr_search"] = [{"lr": lr, "dev_accuracy": 0.8}, {"lr": 1.0, "dev_accuracy": 0.1}]
    return result


def section(report, title):
    text = report.split(f"## {title}\n", 1)[1]
    return text.split("\n## ", 1)[0]


def table_rows(text):
    """``{first cell: [other cells]}`` of the markdown table rows in ``text``."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and not cells[0].startswith("---"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "runs"
    finetune = {
        # sst2: FE clearly more accurate; lrs chosen on dev differ between seeds
        "fully-explored": {
            "sst2": [
                finetune_result([0.80, 0.82], 3e-4),
                finetune_result([0.81, 0.81], 3e-4),
                finetune_result([0.79, 0.79], 1e-3),
            ],  # fmt: skip
            "agnews": [finetune_result([0.60, 0.60])] * 3,
        },
        "standard": {
            "sst2": [
                finetune_result([0.70, 0.70]),
                finetune_result([0.71, 0.71]),
                finetune_result([0.69, 0.69]),
            ],  # fmt: skip
            # agnews: FE clearly less accurate
            "agnews": [finetune_result([x, x]) for x in (0.90, 0.91, 0.89)],
        },
    }
    make_experiment(root, RUNS, FINALS, finetune)
    path = write_report(root)
    return root, path.read_text()


def test_every_comparison_against_the_baseline(report):
    _, text = report
    against_fe = section(text, "Every comparison").split("Each variant against `fully-explored`")
    rows = table_rows(against_fe[0])
    assert set(rows) == {"variant", "fully-explored", "fe-K2", "fe-K4", "fe-allmask"}
    assert rows["fully-explored"] == [
        "3.5000 ± 0.0100 (n=3)",
        "-0.5000",
        "-0.5000 ± 0.0000 (paired t, 2 df), lower in 3 of 3",
        "lower (better)",
    ]
    assert rows["fe-K2"][1:] == ["+0.5000", "+0.5000 ± 0.0000 (paired t, 2 df), lower in 0 of 3",
                                 "higher (worse)"]  # fmt: skip
    # fe-K4 is 0.05 above in seed 0, 0.24 above in seed 1, 0.14 below in seed 2: the
    # differences' sd is 0.19, and t(0.975, 2 df) = 4.303 makes the interval +-0.472.
    assert rows["fe-K4"][1:] == [
        "+0.0500",
        "+0.0500 ± 0.4720 (paired t, 2 df), lower in 1 of 3",
        "tie within noise",
    ]
    seeds = {k: dict(enumerate(v)) for k, v in FINALS.items()}
    assert compare(seeds["fe-K4"], seeds["standard"]) == "tie"


def test_every_comparison_against_fully_explored(report):
    _, text = report
    after = section(text, "Every comparison").split("against `fully-explored`")[1]
    rows = table_rows(after.split("Each fully-explored variant against every")[0])
    assert set(rows) == {"variant", "standard", "fe-K2", "fe-K4", "fe-allmask"}
    assert rows["standard"][1] == "+0.5000" and rows["standard"][3] == "higher (worse)"
    assert rows["fe-allmask"][1] == "+0.1000" and rows["fe-allmask"][3] == "higher (worse)"
    # fe-K4 - FE: +0.55, +0.74, +0.36 per seed: sd 0.19, interval +-0.472 around +0.55
    assert rows["fe-K4"][3] == "higher (worse)"


def test_ablation_plots_when_k_varies(report):
    root, text = report
    ablations = section(text, "Ablations")
    assert "![final loss by variant](final_loss_by_variant.png)" in ablations
    assert "![final loss vs views](final_loss_vs_views.png)" in ablations
    assert (root / "final_loss_by_variant.png").stat().st_size > 1000
    assert (root / "final_loss_vs_views.png").stat().st_size > 1000
    cfg = json.loads((root / "experiment.json").read_text())
    variants = dict.fromkeys(RUNS)
    # fe-allmask changes the replacement too, and standard is not fully-explored.
    assert views_ablation(cfg, variants) == {"fully-explored": 7, "fe-K2": 2, "fe-K4": 4}


def test_views_of_variants_without_views():
    runs = {
        "a": {},  # no strategy, views or rate anywhere: fully-explored at rate 0.15, K = 7
        "b": {"rate": 0.4},  # 1/0.4 = 2.5 rounds up, as the tool does
        "c": {"strategy": "random", "views": 1},
        "d": {"views": 3, "mask_prob": 0.8, "random_prob": 0.1},
        "e": {"strategy": "fully-explored-span", "views": 4},
    }
    variants = dict.fromkeys([*runs, "not-configured"])
    assert views_ablation({"runs": runs}, variants) == {"a": 7, "b": 3, "d": 3}
    # The base applies where a variant does not override it.
    assert views_ablation({"base": {"strategy": "random"}, "runs": runs}, variants) == {}
    runs["f"] = {"views": 5, "mask_prob": 0.8, "random_prob": 0.1}
    cfg = {"base": {"mask_prob": 1.0, "random_prob": 0.0}, "runs": runs}
    assert views_ablation(cfg, dict.fromkeys(runs)) == {"d": 3, "f": 5}
    assert views_ablation({"runs": {"a": {}, "b": {"views": 7}}}, variants) == {}


def test_no_views_plot_with_a_single_k(tmp_path):
    runs = {k: RUNS[k] for k in ("standard", "fully-explored", "fe-allmask")}
    root = make_experiment(tmp_path / "runs", runs, {k: FINALS[k] for k in runs})
    text = write_report(root).read_text()
    assert "final_loss_by_variant.png" in section(text, "Ablations")
    assert "final_loss_vs_views" not in text
    assert not (root / "final_loss_vs_views.png").exists()
    assert "No fine-tuning results." in text
    assert "downstream" not in section(text, "Claims")


def test_chosen_learning_rates_in_the_downstream_table(report):
    _, text = report
    table = section(text, "Downstream")
    assert "| lr (chosen on dev) |" in table
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    fe_sst2 = next(x for x in lines if x.startswith("| fully-explored | sst2 |"))
    assert fe_sst2.endswith("| 3e-04, 1e-03 | not recorded |")  # old files lack it
    assert next(x for x in lines if x.startswith("| standard | sst2 |")).endswith(
        "| — | not recorded |"
    )
    assert "| 0.803 ± 0.012 (n=6) |" in fe_sst2


def test_downstream_claims(report):
    _, text = report
    rows = table_rows(section(text, "Claims"))
    sst2 = rows["FE pre-training helps downstream (sst2)"]
    assert sst2[1] == "reproduced"
    assert "fully-explored 0.803 ± 0.012 (n=3) vs standard 0.700 ± 0.010 (n=3)" in sst2[0]
    assert rows["FE pre-training helps downstream (agnews)"][1] == "not reproduced (FE worse)"
    loss = rows["FE trains more efficiently than standard random masking at equal compute"]
    assert loss[1] == "reproduced"


def test_downstream_claim_tie(tmp_path):
    runs = {k: RUNS[k] for k in ("standard", "fully-explored")}
    finetune = {
        "fully-explored": {"sst2": [finetune_result([x]) for x in (0.70, 0.80, 0.75)]},
        "standard": {"sst2": [finetune_result([x]) for x in (0.74, 0.76, 0.72)]},
    }
    root = make_experiment(tmp_path / "runs", runs, {k: FINALS[k] for k in runs}, finetune)
    rows = table_rows(section(write_report(root).read_text(), "Claims"))
    assert rows["FE pre-training helps downstream (sst2)"][1] == "inconclusive at this scale"


def test_the_downstream_claim_judges_the_metric_that_chose_the_recipe(tmp_path):
    """Accuracy and macro-F1 disagree here: FE wins on accuracy, loses on macro-F1.
    The runs chose their recipe by macro-F1, so the claim reads macro-F1."""
    runs = {k: RUNS[k] for k in ("standard", "fully-explored")}

    def result(accuracy, f1):
        return {"metric": "macro_f1", "runs": [{"test_accuracy": accuracy, "test_macro_f1": f1}]}

    finetune = {
        "fully-explored": {"sst2": [result(0.80 + d, 0.50 + d) for d in (0, 0.01, 0.02)]},
        "standard": {"sst2": [result(0.70 + d, 0.60 + d) for d in (0, 0.01, 0.02)]},
    }
    root = make_experiment(tmp_path / "runs", runs, {k: FINALS[k] for k in runs}, finetune)
    claim = table_rows(section(write_report(root).read_text(), "Claims"))[
        "FE pre-training helps downstream (sst2)"
    ]
    assert claim[0].startswith("test macro-F1 per pre-training seed")
    assert "standard minus fully-explored +0.1000" in claim[0]
    assert claim[1] == "not reproduced (FE worse)"


def test_the_references_join_the_downstream_table_with_their_collapses(tmp_path):
    runs = {k: RUNS[k] for k in ("standard", "fully-explored")}
    finetune = {k: {"sst2": [finetune_result([0.7])] * 3} for k in runs}
    root = make_experiment(tmp_path / "runs", runs, {k: FINALS[k] for k in runs}, finetune)
    scores = [(0.5, True), (0.6, False)]
    reference = {"lr": 1e-3, "runs": [
        {"test_accuracy": a, "test_macro_f1": a, "collapsed": c} for a, c in scores
    ]}  # fmt: skip
    (root / "random-init-finetune-sst2.json").write_text(json.dumps(complete(reference)))
    start = {"lr": 3e-4, "runs": [{"test_accuracy": 0.7, "test_macro_f1": 0.7, "collapsed": False}]}
    (root / "start-seed1-finetune-sst2.json").write_text(json.dumps(complete(start)))
    table = section(write_report(root).read_text(), "Downstream")
    rows = table_rows(table)
    assert rows["random initialisation"] == [
        "sst2", "0.550 ± 0.071 (n=2)", "0.550 ± 0.071 (n=2)", "1e-03", "1 of 2"
    ]  # fmt: skip
    assert rows["start seed1"][3:] == ["3e-04", "0 of 1"]
    assert "random-init-finetune-sst2.json" in table and "start-seed1-finetune-sst2.json" in table


def test_the_loss_claim_names_a_baseline_that_is_not_standard_masking(tmp_path):
    runs = {
        "span": {"strategy": "span", "views": 1, "rate": 0.15, "batch_size": 28},
        "fully-explored-span": {"strategy": "fully-explored-span", "batch_size": 4},
    }
    finals = {"span": [5.0, 5.1, 5.2], "fully-explored-span": [5.3, 5.4, 5.5]}
    root = make_experiment(tmp_path / "runs", runs, finals)
    rows = table_rows(section(write_report(root).read_text(), "Claims"))
    assert rows["FE trains more efficiently than `span` at equal compute"][1] == (
        "not reproduced (FE worse)"
    )


def test_efficiency_table_shows_the_baselines_steps_to_each_final_loss(tmp_path):
    root = make_experiment(tmp_path / "runs", RUNS, FINALS)
    rows = section(write_report(root).read_text(), "Efficiency").splitlines()
    k2 = next(r for r in rows if r.startswith("| fe-K2 |"))
    fe = next(r for r in rows if r.startswith("| fully-explored |"))
    # standard's curves pass 4.50 at steps 100, 102 and 99.6 (linear between evaluations)
    assert k2.endswith("| 101 |")
    assert fe.endswith("| not reached in every seed |"), "3.50 is below every standard curve"


def test_reevaluations_get_their_own_comparison_table(tmp_path):
    root = make_experiment(tmp_path / "runs", RUNS, FINALS)
    rescored = {"standard": [5.0, 5.01, 4.99], "fe-allmask": [4.0, 4.01, 3.99]}
    for variant, losses in rescored.items():
        for seed, loss in enumerate(losses):
            e = {"eval_loss": loss, "mask_prob": 1.0, "random_prob": 0.0, "sequences": 8}
            (root / variant / f"seed-{seed}" / "eval-mask1-random0.json").write_text(json.dumps(e))
    text = section(write_report(root).read_text(), "Re-evaluation with another replacement policy")
    assert "100% `[MASK]` and 0% random" in text
    row = next(r for r in text.splitlines() if r.startswith("| fe-allmask |"))
    assert (
        "| -1.0000 |" in row
        and "| -1.0000 ± 0.0000 (paired t, 2 df), lower in 3 of 3 | lower (better) |" in row
    )
    assert "| fe-K2 |" not in text, "variants without a re-evaluation are left out"


def test_a_sweep_of_standard_runs_compares_against_its_first_variant(tmp_path):
    # strategy in `base` only, variants differing in lr, one seed each: the
    # baseline is the config's first variant (not the alphabetically first)
    runs = {"tiny-lr2e-3": {"lr": 0.002}, "mini-lr1e-3": {"model": "mini", "lr": 0.001}}
    root = make_experiment(tmp_path / "exp", runs, {"tiny-lr2e-3": [5.0], "mini-lr1e-3": [5.5]})
    config = {"name": "sweep", "base": {"strategy": "random", "views": 1}, "runs": runs}
    (root / "experiment.json").write_text(json.dumps(config))
    report = write_report(root).read_text()
    assert "baseline `tiny-lr2e-3`'s mean final validation loss, 5.0000" in report
    row = next(line for line in section(report, "Every comparison").splitlines() if "mini" in line)
    assert row.startswith("| mini-lr1e-3 | 5.5000 (n=1) | +0.5000 |") and "±" not in row


def test_paired_differences_use_only_the_seeds_both_ran():
    from femlm.report.stats import t_test

    # Seeds spread by 1 nat, but `a` is 0.1 lower in each shared seed: pairing sees it
    # where an unpaired test could not.
    a = {0: 5.0, 1: 6.0, 2: 7.0, 3: 8.0}
    b = {0: 5.1, 1: 6.1, 2: 7.1, 3: 8.1, 4: 9.5}
    t = t_test(a, b)
    assert (t.kind, t.n, t.lower, t.outcome) == ("paired", 4, 4, "lower")
    assert t.text() == "-0.1000 ± 0.0000 (paired t, 3 df), lower in 4 of 4"
    t = t_test({0: 5.0, 1: 6.0, 2: 7.1}, b)
    assert t.text() == "-0.0667 ± 0.1434 (paired t, 2 df), lower in 2 of 3"
    # Seeds not shared: Welch on all of them, no seed counts.
    t = t_test({7: 5.0, 8: 6.0, 9: 7.1}, b)
    assert t.kind == "Welch" and t.outcome == "tie" and t.text().endswith("seeds not paired")
    assert t_test({0: 5.0}, {1: 6.0}).outcome == "tie"


@pytest.mark.parametrize(
    "df, q",  # two-sided 95% t quantiles from a printed table (Student's t, 0.975)
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423),
     (1000, 1.9623)],
)  # fmt: skip
def test_t_quantile_matches_the_table(df, q):
    from femlm.report.stats import t_quantile

    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)


@pytest.mark.parametrize("df", [2.5, 7.3])
def test_t_quantile_at_fractional_df_integrates_its_density(df):
    # Welch gives fractional df, which tables do not list: the density integrated from
    # 0 to the quantile (Simpson's rule) must hold 0.475 of the mass.
    from femlm.report.stats import t_quantile

    q = t_quantile(0.975, df)
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    n, h = 2000, q / 2000
    f = [c * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(n + 1)]
    mass = h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))
    assert mass == pytest.approx(0.475, abs=1e-9)


def test_welch_uses_the_welch_satterthwaite_degrees_of_freedom():
    from femlm.report.stats import Verdict, t_quantile

    v = Verdict.welch(1.0, 0.2, 3, 0.5, 0.1, 5)
    va, vb = 0.04 / 3, 0.01 / 5
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 4)
    assert v.df == pytest.approx(df)
    assert v.half == pytest.approx(t_quantile(0.975, df) * math.sqrt(va + vb))


def test_fair_pairs_differ_only_in_masking_and_mask_the_same_share():
    from femlm.report.pairs import counterparts

    runs = {
        **RUNS,
        "fully-explored": {**RUNS["fully-explored"], "variance_every": 100},  # measurement only
        "standard-allmask": {**RUNS["standard"], "mask_prob": 1.0, "random_prob": 0.0},
        "standard-r50": {**RUNS["standard"], "rate": 0.5},
        "random-K": {"strategy": "random", "views": 7, "batch_size": 4},  # default rate 0.15
        "standard-lr": {**RUNS["standard"], "lr": 0.01},  # trains differently: no pair
        # across epochs meets one-view masking at its rate, never another FE variant
        "fe-epochs-K2": {"strategy": "fully-explored-epochs", "views": 2, "batch_size": 28},
    }
    cfg = {"base": {"lr": 0.002}, "runs": runs}
    found = counterparts(cfg, dict.fromkeys([*runs, "not-in-config"]))
    assert sorted(found) == [
        ("fe-K2", "standard-r50"),
        ("fe-allmask", "standard-allmask"),
        ("fe-epochs-K2", "standard-r50"),
        ("fully-explored", "random-K"),
        ("fully-explored", "standard"),
    ]


def test_report_lists_the_fair_pairs(report):
    _, text = report
    rows = table_rows(section(text, "Every comparison").split("FE variant |")[1])
    assert rows["fully-explored"][:2] == ["3.5000 ± 0.0100 (n=3)", "standard"]
    assert rows["fully-explored"][3:] == [
        "-0.5000", "-0.5000 ± 0.0000 (paired t, 2 df), lower in 3 of 3", "lower (better)"
    ]  # fmt: skip
    assert [k for k in rows if not k.startswith("---")] == ["fully-explored"]


def test_unfinished_runs_are_left_out_and_named(tmp_path):
    root = make_experiment(tmp_path / "runs", RUNS, {"standard": [4.0, 4.1], "fe-K2": [3.0, 3.1]})
    # fe-K2 seed 1 saved its config but has no final model: still training.
    (root / "fe-K2" / "seed-1" / "femlm_config.json").write_text("{}")
    (root / "standard" / "seed-1" / "femlm_config.json").write_text("{}")
    (root / "standard" / "seed-1" / "final").mkdir()
    text = write_report(root).read_text()
    assert "Left out, not finished (still training or interrupted): `fe-K2` seed 1." in text
    assert "| fe-K2 | 3.0000 (n=1) |" in text
    assert "4.0500 ± 0.0707 (n=2)" in text, "a run with final/ counts"


def test_standard_masking_at_rate_one_over_k_is_the_k_plots_control():
    runs = {
        "std": {"strategy": "random", "views": 1},  # rate 0.15 rounds to K = 7
        "r50": {"strategy": "random", "views": 1, "rate": 0.5},
        "r25-allmask": {"strategy": "random", "rate": 0.25, "mask_prob": 1.0, "random_prob": 0.0},
        "rK": {"strategy": "random", "views": 7},  # K views of fewer sequences: not the control
        "span": {"strategy": "span", "views": 1, "rate": 0.5},
        "r10": {"strategy": "random", "views": 1, "rate": 0.1},  # K = 10 was not run
    }
    fe = {"fe-K2": {"views": 2}, "fe-K4": {"views": 4}, "fe": {"rate": 0.15}}
    cfg = {"runs": {**runs, **fe}}
    views = {"fe-K2": 2, "fe-K4": 4, "fe": 7}
    got = standard_at_views(cfg, dict.fromkeys([*cfg["runs"], "not-configured"]), views)
    assert got == {"std": 7, "r50": 2}


def old_layout_variance() -> dict:
    """A variance.json as femlm wrote it before typed results (adaptive's seed-0 numbers):
    flat keys, V_data and sigma2 of random, each strategy compared with standard."""
    est = {"v_data": 0.715, "sigma2": 33.5, "standard.step_var": 1.22}
    for s, mv, step, rel in (("random", 4.67, 1.35, 1.10), ("fully-explored", 4.2, 1.21, 0.995)):
        est |= {f"{s}.maskvar": mv, f"{s}.maskvar_no_replacement": 0.5, f"{s}.ratio": mv / 4.67}
        est |= {f"{s}.replacement_share": 0.9, f"{s}.sigma2": 33.5, f"{s}.C": 0.1}
        est |= {f"{s}.v_data": 0.7, f"{s}.step_var": step, f"{s}.step_var_vs_standard": rel}
        est |= {f"{s}.ratio_no_replacement": 1.0, f"{s}.break_even_v_data": 0.68}
    est |= {"hamming.d0": 0.12, "hamming.d8": 0.04}
    return {
        "config": {"views": 7, "batch_size": 4, "rate": 0.15, "mask_prob": 0.8, "random_prob": 0.1},
        "setup": {"distances": [0, 8], "hamming_size": 4},
        "strategies": ["random", "fully-explored"],
        "estimates": {k: {"value": v, "low": v * 0.9, "high": v * 1.1} for k, v in est.items()},
        "recommendation": "lowest step variance at equal compute (B=4, K=7): fully-explored, ...",
    }


def test_old_variance_json_and_metrics_rows_still_load_into_the_report(tmp_path):
    root = make_experiment(tmp_path / "exp", {k: RUNS[k] for k in ("standard", "fully-explored")},
                           {k: FINALS[k] for k in ("standard", "fully-explored")})  # fmt: skip
    run = root / "fully-explored" / "seed-0"
    (run / "variance.json").write_text(json.dumps(old_layout_variance()))
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 200, "fully-explored.ratio": 0.6, "v_data": 2.5}) + "\n")
    text = write_report(root).read_text()
    assert "FE / standard step variance 0.995 [0.895, 1.095] | inconclusive |" in text
    assert "FE / random-K mask variance 0.899 [0.809, 0.989] | reproduced |" in text
    assert "measured before the pooled V_data rule" in section(text, "Gradient variance")
    assert "| fully-explored | 1.210 [1.089, 1.331] | 3.5000 |" in text
    assert "| standard | 1.220 [1.098, 1.342] | 4.0000 |" in text
    assert (root / "variance_vs_steps.png").is_file()


def test_the_references_are_shown_before_any_variant_is_fine_tuned(tmp_path):
    runs = {k: RUNS[k] for k in ("standard", "fully-explored")}
    root = make_experiment(tmp_path / "runs", runs, {k: FINALS[k] for k in runs})
    reference = {
        "lr": 1e-3,
        "runs": [{"test_accuracy": 0.6, "test_macro_f1": 0.6, "collapsed": False}],
    }
    (root / "random-init-finetune-sst2.json").write_text(json.dumps(complete(reference)))
    table = section(write_report(root).read_text(), "Downstream")
    assert "No fine-tuning results." not in table
    assert table_rows(table)["random initialisation"][:2] == ["sst2", "0.600 (n=1)"]


def test_compute_note_adds_the_downstream_runs_own_timings(tmp_path):
    from types import SimpleNamespace

    from femlm.report.runs import compute_note

    (tmp_path / "a" / "seed-3").mkdir(parents=True)
    runs = {"runs": [{"seed": 0, "seconds": 1800.0}, {"seed": 1, "seconds": 1800.0}]}
    (tmp_path / "a" / "seed-3" / "finetune-movies.json").write_text(json.dumps(runs))
    (tmp_path / "probe-random-init-movies.json").write_text(
        json.dumps({"runs": [{"seed": 0, "seconds": 360.0}]})
    )
    variants = {"a": [SimpleNamespace(seconds=3600.0), SimpleNamespace(seconds=None)]}
    text = "\n".join(compute_note(tmp_path, variants))
    assert "1 runs timed, 1.0 hours of pre-training" in text
    assert "2 fine-tuning runs, 1.0 hours; 1 probe runs, 6.0 minutes." in text
    assert "not timed" not in text  # no learning-rate search was run
    searched = {**runs, "lr_search": [{"lr": 1e-4}, {"lr": 1e-3}]}
    (tmp_path / "a" / "seed-3" / "finetune-movies.json").write_text(json.dumps(searched))
    assert "rates not chosen are not timed" in "\n".join(compute_note(tmp_path, variants))
    assert compute_note(tmp_path, {"a": [SimpleNamespace(seconds=None)]}) == []


def test_the_report_says_when_runs_mix_precisions(tmp_path):
    from femlm.report.runs import precision_note

    def run(variant: str, seed: int, **saved) -> None:
        folder = tmp_path / variant / f"seed-{seed}"
        folder.mkdir(parents=True)
        (folder / "femlm_config.json").write_text(json.dumps({"bf16": False, **saved}))

    run("a", 0)
    run("b", 0)
    assert precision_note(tmp_path) == []  # fp32 everywhere: the committed reports unchanged
    run("a", 1, bf16=True)  # auto_bf16 picked bf16 on another machine
    assert "**mixed** (1 bf16, 2 fp32 runs)" in precision_note(tmp_path)[0]
