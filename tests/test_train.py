"""Pre-training: config, checkpoints, the loop, exact resume, DDP, bad input."""

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from femlm.cli import main
from femlm.config import TrainConfig, check_config
from femlm.errors import FemlmError
from femlm.schema import load_config
from femlm.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint, verify

WORDS = (
    "the a model token mask gradient sentence word view step data train loss noise random "
    "fully explored disjoint group predict every once language masked variance small large"
).split()


def _corpus(path: Path, docs: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(docs):
        n = rng.randint(8, 40)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _args(setup, out, *extra):
    return [
        "pretrain",
        "--data", str(setup["corpus"]),
        "--tokenizer", str(setup["tokenizer"]),
        "--cache-dir", str(setup["cache"]),
        "--out-dir", str(out),
        "--max-length", "32",
        "--batch-size", "4",
        "--max-steps", "6",
        "--warmup-steps", "2",
        "--eval-every", "3",
        "--eval-sequences", "8",
        "--save-every", "3",
        "--log-every", "1",
        "--threads", "1",
        "--no-progress",
        *extra,
    ]  # fmt: skip


def test_config_precedence_and_unknown_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.001\nbatch_size: 16\nstrategy: random\n")
    cfg = load_config(TrainConfig, str(f), {"batch_size": 4, "views": None})
    assert (cfg.lr, cfg.batch_size, cfg.strategy, cfg.views) == (0.001, 4, "random", None)
    f.write_text("lr: 0.001\nlearning_rate: 3\n")
    with pytest.raises(FemlmError, match="unknown config key.*learning_rate"):
        load_config(TrainConfig, str(f))
    f.write_text("batch_size: many\n")
    with pytest.raises(FemlmError, match="batch_size.*int"):
        load_config(TrainConfig, str(f))


def test_checkpoint_round_trip_and_corruption(tmp_path):
    model = torch.nn.Linear(3, 2)
    state = {"step": 5, "rng": torch.get_rng_state(), "optimizer": {"x": torch.ones(2)}}
    path = save_checkpoint(tmp_path, 5, model, state, {"lr": 1.0})
    assert list_checkpoints(tmp_path) == [path]
    other = torch.nn.Linear(3, 2)
    loaded = load_checkpoint(path, other)
    assert loaded["step"] == 5 and torch.equal(other.weight, model.weight)
    (tmp_path / ".step-0000009.tmp").mkdir()  # a crash mid-write leaves this: never listed
    assert list_checkpoints(tmp_path) == [path]
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(FemlmError, match="corrupt"):
        verify(path)
    (path / "manifest.json").unlink()
    with pytest.raises(FemlmError, match="incomplete"):
        verify(path)


def test_pretrain_writes_a_loadable_model_metrics_and_config(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(setup, out)) == 0
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    tok = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.num_hidden_layers == 2 and tok.mask_token == "[MASK]"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]
    train_losses = [r["loss"] for r in rows if "loss" in r]
    assert len(train_losses) == 6 and all(l > 0 for l in train_losses)  # noqa: E741
    saved = json.loads((out / "femlm_config.json").read_text())
    assert saved["strategy"] == "fully-explored" and saved["max_steps"] == 6
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "step-0000003",
        "step-0000006",
    ]


def _run(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "femlm", *args], env=env, **kw)


def test_resume_after_sigkill_equals_an_uninterrupted_run(setup, tmp_path):
    extra = ("--max-steps", "12", "--save-every", "3", "--eval-every", "6")
    full = tmp_path / "full"
    assert _run(_args(setup, full, *extra), stderr=subprocess.DEVNULL).wait(300) == 0

    killed = tmp_path / "killed"
    target = random.Random(os.getpid()).choice([3, 6, 9])
    proc = _run(_args(setup, killed, *extra), stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    deadline = time.time() + 300
    while not (ckpts / f"step-{target:07d}").exists():
        assert proc.poll() is None, "run ended before the checkpoint we kill after"
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()
    resumed = _run(_args(setup, killed, *extra, "--resume"), stderr=subprocess.PIPE, text=True)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a = load_file(str(full / "final" / "model.safetensors"))
    b = load_file(str(killed / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"killed after step {target}: weights differ"
    metrics = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 13)), "no duplicated steps"


def test_micro_batches_split_over_ranks_reproduce_the_single_process_batch(setup):
    from femlm.data.blocks import build_blocks
    from femlm.data.tokenizer import load_tokenizer
    from femlm.masking.collator import MaskingCollator
    from femlm.train.dist import Dist
    from femlm.train.loop import _micro_batches

    tok = load_tokenizer(setup["tokenizer"])
    blocks = build_blocks([setup["corpus"]], tok, 32, setup["cache"], progress=False)
    cfg = TrainConfig(batch_size=8, grad_accum=2)
    collator = MaskingCollator(tok, views=4, return_view_info=False)
    cpu = torch.device("cpu")
    single = list(_micro_batches(cfg, blocks["train"], collator, 5, Dist(0, 1, cpu)))
    ranks = [
        list(_micro_batches(cfg, blocks["train"], collator, 5, Dist(r, 2, cpu))) for r in (0, 1)
    ]
    rows = lambda batches: {  # noqa: E731
        tuple(x) for b in batches for x in torch.cat([b["input_ids"], b["labels"]], 1).tolist()
    }
    assert rows(single) == rows(ranks[0]) | rows(ranks[1])
    assert len(rows(single)) == 8 * 4


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is tested on Linux")
def test_torchrun_two_processes_match_one_process(setup, tmp_path):
    # gloo on CPU whatever the machine has: NCCL needs a GPU per process.
    extra = ("--dropout", "0", "--max-steps", "4", "--eval-every", "2", "--device", "cpu")
    one = tmp_path / "one"
    assert main(_args(setup, one, *extra)) == 0
    two = tmp_path / "two"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "femlm", *_args(setup, two, *extra),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = proc.stdout + proc.stderr  # by rank 0 alone
    assert said.count("step 2: eval loss") == 1 and said.count("final model:") == 1, said
    read = lambda p: [json.loads(x) for x in (p / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = read(one), read(two)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "eval_loss"):
            if key in ra:
                # Same masks and data; only the order of float sums differs.
                assert ra[key] == pytest.approx(rb[key], rel=1e-4), (ra, rb)


def test_bad_inputs_fail_with_one_line(setup, tmp_path, capsys):
    def fails(args, message):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("femlm: error:") and message in err[-1], err

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    fails(_args(setup, tmp_path / "a", "--data", str(empty)), "")
    fails(_args(setup, tmp_path / "b", "--rate", "1.5"), "rate")
    fails(_args(setup, tmp_path / "c", "--views", "4", "--rate", "0.15"), "disagree")
    fails(_args(setup, tmp_path / "d", "--resume"), "nothing to resume")
    fails(_args(setup, tmp_path / "e", "--batch-size", "3", "--grad-accum", "2"), "divisible")
    fails(_args(setup, tmp_path / "f", "--model", str(tmp_path / "nope")), "")
    fails(_args(setup, tmp_path / "g", "--tokenizer", str(tmp_path / "nope")), "")
    fails(_args(setup, tmp_path / "h", "--batch-size", "100000"), "fewer than one batch")
    fails(
        _args(setup, tmp_path / "i", "--variance-every", "1", "--variance-sequences", "2"),
        "at least 3",
    )


def test_an_existing_run_is_never_overwritten_and_corruption_is_reported(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(setup, out, "--max-steps", "3")) == 0
    assert main(_args(setup, out, "--max-steps", "3")) == 2
    assert "--resume" in capsys.readouterr().err
    newest = list_checkpoints(out / "checkpoints")[-1]
    shutil.rmtree(out / "final")  # as if killed after the last checkpoint
    (newest / "training.pt").write_bytes(b"garbage")
    assert main(_args(setup, out, "--max-steps", "3", "--resume")) == 2
    assert "passes its sha256" in capsys.readouterr().err  # it had only one checkpoint


def test_continual_pretraining_from_a_checkpoint_without_mlm_head(setup, tmp_path, caplog):
    from transformers import BertConfig, BertModel

    from femlm.data.tokenizer import load_tokenizer

    tok = load_tokenizer(setup["tokenizer"])
    encoder = BertModel(
        BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64),
        add_pooling_layer=False,
    )  # fmt: skip
    folder = tmp_path / "encoder"
    encoder.save_pretrained(folder)
    tok.save_pretrained(folder)
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="femlm"):
        assert main(_args(setup, out, "--model", str(folder), "--max-steps", "2")) == 0
    assert "tied to the word embeddings" in caplog.text
    # femlm's one line replaces transformers' table of fresh weights
    assert "LOAD REPORT" not in caplog.text
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    assert (
        model.get_output_embeddings().weight.data_ptr()
        == model.get_input_embeddings().weight.data_ptr()
    )


def test_variance_every_logs_the_variance_terms(setup, tmp_path):
    out = tmp_path / "run"
    extra = ("--max-steps", "2", "--variance-every", "2", "--variance-sequences", "3")
    assert main(_args(setup, out, *extra)) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    terms = [r for r in rows if "variance_ratio" in r]
    assert [r["step"] for r in terms] == [2]
    assert terms[0]["variance_ratio"] > 0 and terms[0]["variance_v_data"] >= 0


def test_the_training_probe_measures_what_trained_and_femlm_variance_agrees(
    setup, tmp_path, monkeypatch
):
    # Fully-explored at rate 0.4 trains with K = round_half_up(2.5) = 3; Python's
    # round gave the probe K = 2. Both probes read K and the split from the run, and
    # draw the same validation sequences for the same seed; --seed only moves the pick.
    import femlm.variance.analyser as analyser
    import femlm.variance.during as during
    from femlm.variance.config import VarianceConfig
    from femlm.variance.probe import probe_config

    seen = []
    original = analyser.variance_terms

    def spy(model, sequences, tokenizer, **kw):
        seen.append(torch.stack(sequences))
        return original(model, sequences, tokenizer, **kw)

    monkeypatch.setattr(during, "variance_terms", spy)  # the training probe's
    out = tmp_path / "run"
    extra = ("--max-steps", "2", "--variance-every", "2", "--variance-sequences", "3")
    extra += ("--rate", "0.4", "--validation-fraction", "0.1", "--seed", "5")
    assert main(_args(setup, out, *extra)) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["variance_views"] for r in rows if "variance_views" in r] == [3]

    def probe(seed):
        cfg = probe_config(
            VarianceConfig(
                model=str(out / "final"), cache_dir=str(setup["cache"]), max_length=32,
                sequences=3, seed=seed,
            )
        )  # fmt: skip
        return cfg, analyser.load_probe(cfg)[2]

    cfg, same = probe(5)
    assert cfg.views == 3 and cfg.validation_fraction == 0.1 and cfg.data == [str(setup["corpus"])]
    assert torch.equal(torch.stack(same), seen[0])
    held_out = {tuple(r) for r in _validation_rows(cfg, setup)}
    assert all(tuple(s.tolist()) in held_out for s in probe(1)[1])
    with pytest.raises(FemlmError, match="trained on"):
        probe_config(dataclasses.replace(cfg, validation_fraction=0.02))


def _validation_rows(cfg, setup) -> list:
    from femlm.data.blocks import build_blocks
    from femlm.data.packing import VALIDATION_SPLIT_SEED
    from femlm.data.tokenizer import load_tokenizer

    tok, fraction = load_tokenizer(cfg.model), cfg.validation_fraction
    blocks = build_blocks(
        cfg.data, tok, 32, setup["cache"], "text", fraction, VALIDATION_SPLIT_SEED, progress=False
    )
    return blocks["validation"]["input_ids"]


def test_evaluate_rescores_the_fixed_positions_with_another_replacement(setup, tmp_path, capsys):
    from femlm.train.reevaluate import evaluate_run

    out = tmp_path / "exp" / "standard" / "seed-0"
    assert main(_args(setup, out, "--strategy", "random", "--views", "1")) == 0
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    final = [r["eval_loss"] for r in logged if "eval_loss" in r][-1]
    same = evaluate_run(out, 1.0, 0.0)  # training scores all-[MASK] inputs by default
    assert same["eval_loss"] == pytest.approx(final, rel=1e-6), "reproduces training's eval"
    assert (
        main(["evaluate", str(tmp_path / "exp"), "--mask-prob", "0.8", "--random-prob", "0.1"]) == 0
    )
    saved = json.loads((out / "eval-mask0.8-random0.1.json").read_text())
    assert saved["mask_prob"] == 0.8 and saved["sequences"] == 8
    (out / "eval-mask0.8-random0.1.json").unlink()
    assert main(["evaluate", str(out.parent), "--mask-prob", "0.8", "--random-prob", "0.1"]) == 0
    assert (out / "eval-mask0.8-random0.1.json").is_file(), "a variant folder is searched too"
    assert saved["eval_loss"] != final, "other inputs at the same positions"
    assert str(out) in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert main(["evaluate", str(out), "--mask-prob", "0.9", "--random-prob", "0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is not a finished run" in err[0] and "sum <= 1" in err[-1] and len(err) == 2


def test_evaluation_inputs_are_all_mask_by_default(setup):
    from femlm.data.blocks import build_blocks
    from femlm.data.tokenizer import load_tokenizer
    from femlm.train.evaluate import eval_batches_for

    tok = load_tokenizer(str(setup["tokenizer"]))
    blocks = build_blocks([str(setup["corpus"])], tok, 32, str(setup["cache"]), progress=False)
    cfg = TrainConfig(data=[str(setup["corpus"])], eval_sequences=8)
    for mask_prob, random_prob, all_masked in ((1.0, 0.0, True), (0.8, 0.1, False)):
        cfg.eval_mask_prob, cfg.eval_random_prob = mask_prob, random_prob
        batch = eval_batches_for(cfg, tok, blocks["validation"])[0]
        shown = batch["input_ids"][batch["labels"] != -100]
        assert bool((shown == tok.mask_token_id).all()) is all_masked
    cfg.eval_mask_prob, cfg.eval_random_prob = 0.9, 0.2
    with pytest.raises(FemlmError, match="eval_mask_prob"):
        check_config(cfg)


def test_more_processes_than_gpus_is_a_one_line_error(monkeypatch):
    import femlm.train.dist as dist

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "pick_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(FemlmError, match="no GPU of its own: 1 visible"):
        dist.init("cuda")
    # a launcher that shows each process only its own GPU: that one is cuda:0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert dist._gpu_index(1) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(FemlmError, match="no GPU of its own"):
        dist._gpu_index(2)
    # ...but torchrun gives every process the same variable: then they would share it
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with pytest.raises(FemlmError, match="no GPU of its own: 1 visible"):
        dist._gpu_index(1)
    assert dist._gpu_index(0) == 0


def test_epochs_set_the_length_schedule_evaluations_and_checkpoints(setup, tmp_path):
    out = tmp_path / "run"
    extra = ("--epochs", "2", "--eval-every", "0", "--save-every", "0", "--keep-last", "5")
    assert main(_args(setup, out, "--batch-size", "64", *extra)) == 0
    saved = json.loads((out / "femlm_config.json").read_text())
    steps, per_epoch = saved["max_steps"], saved["max_steps"] // 2
    assert saved["epochs"] == 2 and steps == 2 * per_epoch and per_epoch >= 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [per_epoch, steps]
    assert [r["lr"] for r in rows if "lr" in r][-1] == 0.0  # linear decay ends with the run
    names = [p.name for p in list_checkpoints(out / "checkpoints")]
    assert names == [f"step-{per_epoch:07d}", f"step-{steps:07d}"]
    assert main(_args(setup, tmp_path / "bad", "--epochs", "0")) == 2


class _FakeWandb:
    """Records what femlm hands to ``wandb`` (the real package is an optional extra)."""

    def __init__(self):
        import importlib.machinery

        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # libraries probe it
        self.init_kwargs, self.logged, self.finished = {}, [], False

    def init(self, **kwargs):
        self.init_kwargs = kwargs
        return self

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        self.finished = True


def test_report_to_wandb_logs_every_metrics_row_offline(setup, tmp_path, monkeypatch):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "run"
    assert main(_args(setup, out, "--max-steps", "3", "--report-to", "wandb")) == 0
    assert fake.init_kwargs["mode"] == "offline" and fake.init_kwargs["dir"] == str(out)
    assert fake.init_kwargs["config"]["report_to"] == "wandb" and fake.finished
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r.pop("step"), r) for r in rows] == fake.logged


def test_report_to_names_the_missing_package(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    for tracker in ("wandb", "tensorboard"):
        assert main(_args(setup, tmp_path / tracker, "--report-to", tracker)) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == f"femlm: error: --report-to {tracker} needs the {tracker} package: " + (
            f"pip install 'femlm[{tracker}]'"
        )
    assert main(_args(setup, tmp_path / "none", "--max-steps", "1")) == 0
    assert not (tmp_path / "none" / "tensorboard").exists()  # only on request


def test_report_to_real_trackers_when_installed(setup, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for tracker in ("tensorboard", "wandb"):
        out = tmp_path / tracker
        assert main(_args(setup, out, "--max-steps", "2", "--report-to", tracker)) == 0
        assert list((out / tracker).rglob("*")), f"{tracker} wrote nothing"


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.interop
def test_gradient_checkpointing_gives_the_same_training(setup, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    enabled = []
    name = "activation_checkpointing_enable"  # transformers 5; 4.x: gradient_checkpointing_enable
    name = name if hasattr(PreTrainedModel, name) else "gradient_checkpointing_enable"
    real = getattr(PreTrainedModel, name)

    def spy(self, *args, **kwargs):
        enabled.append(type(self).__name__)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, name, spy)
    extra = ("--max-steps", "3", "--dropout", "0", "--save-every", "0")
    assert main(_args(setup, tmp_path / "plain", *extra)) == 0
    assert main(_args(setup, tmp_path / "ckpt", *extra, "--gradient-checkpointing")) == 0
    assert enabled == ["RoFormerForMaskedLM"]  # the tiny preset
    assert _losses(tmp_path / "ckpt") == pytest.approx(_losses(tmp_path / "plain"), rel=1e-5)


def test_fp16_scales_the_loss_and_resumes_with_the_scaler(setup, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(setup, out, "--fp16", "--max-steps", "3", "--schedule", "constant")) == 0
    losses = _losses(out)
    assert len(losses) == 3 and all(0 < x < 20 for x in losses)
    state = torch.load(out / "checkpoints" / "step-0000003" / "training.pt", weights_only=True)
    assert state["scaler"]["scale"] > 1  # loss scaling on, its state kept for --resume
    assert (
        main(_args(setup, out, "--fp16", "--max-steps", "6", "--resume", "--schedule", "constant"))
        == 0
    )
    assert main(_args(setup, tmp_path / "both", "--fp16", "--bf16")) == 2
    assert "exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_auto_bf16_picks_by_the_cpu_once_and_a_resume_keeps_the_pick(
    setup, tmp_path, monkeypatch, caplog, native
):
    import femlm.train.loop as loop
    import femlm.train.precision as precision

    used = []  # the precision each start (fresh or resumed) trains in

    def spy(cfg, device):
        used.append(cfg.bf16)
        return precision.autocast(cfg, device)

    monkeypatch.setattr(loop, "autocast", spy)
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: native)
    out = tmp_path / "run"
    extra = ("--max-steps", "2", "--schedule", "constant", "--save-every", "2")
    with caplog.at_level("INFO", logger="femlm"):
        assert main(_args(setup, out, "--auto-bf16", *extra)) == 0
    assert json.loads((out / "femlm_config.json").read_text())["bf16"] is native
    assert ("auto_bf16: bf16 autocast" if native else "auto_bf16: fp32") in caplog.text
    # resumed on a machine that would pick the other way: the run keeps its precision
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: not native)
    resumed = ("--max-steps", "4", "--schedule", "constant", "--resume", "--auto-bf16")
    assert main(_args(setup, out, *resumed)) == 0
    assert used == [native, native]
    assert main(_args(setup, tmp_path / "both", "--fp16", "--auto-bf16")) == 2


def test_errors_name_the_real_cause(setup, tmp_path, capsys):
    def error(args):
        assert main(args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("femlm: error:")  # exit 2: a FemlmError, no traceback
        return lines[-1]

    missing = error(_args(setup, tmp_path / "a", "--data", str(tmp_path / "nonexist.jsonl")))
    assert "nonexist.jsonl' does not exist" in missing
    no_tok = [a for a in _args(setup, tmp_path / "b") if a != str(setup["tokenizer"])]
    no_tok.remove("--tokenizer")
    assert "preset 'tiny' has no tokenizer: give --tokenizer" in error(no_tok)
    hub = error(_args(setup, tmp_path / "c", "--model", "bert-base-uncased"))
    assert "local folders only" in hub and "hf download bert-base-uncased" in hub
    hub = error([*no_tok, "--model", "bert-base-uncased"])  # the tokenizer would come from it
    assert "local folders only" in hub
    nothing = error(["pretrain", "--out-dir", str(tmp_path / "nothing"), "--resume"])
    assert "nothing to resume" in nothing and "femlm_config.json" in nothing
    from transformers import BertConfig, BertForMaskedLM

    bare = tmp_path / "bare-model"  # weights and config.json, no tokenizer files
    BertForMaskedLM(BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(bare)  # fmt: skip
    assert "holds no tokenizer files" in error([*no_tok, "--model", str(bare)])


def test_build_blocks_names_an_in_memory_dataset(setup):
    import datasets

    from femlm.data.blocks import build_blocks
    from femlm.data.tokenizer import load_tokenizer

    rows = datasets.Dataset.from_dict({"text": ["a model", "a token"]})
    with pytest.raises(FemlmError, match="not Dataset; save .*save_to_disk"):
        build_blocks(rows, load_tokenizer(setup["tokenizer"]), 16)


def test_fully_explored_across_epochs_trains_one_view_per_sequence(setup, tmp_path):
    out = tmp_path / "fe-epochs"
    args = _args(setup, out, "--strategy", "fully-explored-epochs", "--rate", "0.25")
    assert main([*args, "--max-steps", "3"]) == 0
    saved = json.loads((out / "femlm_config.json").read_text())
    assert (saved["strategy"], saved["views"], saved["rate"]) == (
        "fully-explored-epochs",
        None,
        0.25,
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in rows)
