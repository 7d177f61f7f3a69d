"""Ensembles inside one run: snapshot ensembles, EMA and SWA, and the report they write."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from pytorch_lightning import Callback

from trainlab import build
from trainlab.ensembles import ensemble_report
from trainlab.ensembles.snapshot import cycle_ends, cycle_lengths, snapshot_schedule
from trainlab.train import train


def test_report_averages_member_probabilities():
    labels = torch.tensor([0, 1, 1])
    a = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])  # right, wrong, right
    b = torch.tensor([[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]])  # wrong, right, right
    report = ensemble_report([a, b], labels)  # mean: [0.65, 0.35], [0.35, 0.65], [0.25, 0.75] -> all right
    assert report["test/acc_members"] == pytest.approx([2 / 3, 2 / 3])
    assert report["test/acc_ensemble"] == 1.0 and report["ensemble_gain"] == pytest.approx(1 / 3)
    expected_nll = -(math.log(0.65) + math.log(0.65) + math.log(0.75)) / 3
    assert report["test/loss_ensemble"] == pytest.approx(expected_nll, rel=1e-6)


def test_snapshot_schedule_restarts_the_cosine_every_cycle():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = snapshot_schedule(opt, total_steps=40, cycles=4)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    period = 10
    expected = [0.1 * (math.cos(math.pi * (t % period) / period) + 1) for t in range(40)]
    assert lrs == pytest.approx(expected)
    assert [lrs[i] for i in (0, 10, 20, 30)] == pytest.approx([0.2] * 4)  # restarts at lr0


def test_snapshot_run_saves_one_member_per_cycle_and_reports_their_average(make_cfg, tmp_path):
    metrics = train(make_cfg("ensemble=snapshot", "ensemble.cycles=3", "trainer.max_epochs=6", "logger=csv"))
    snaps = sorted((tmp_path / "snapshots").glob("snapshot_*.ckpt"))
    assert [p.name for p in snaps] == ["snapshot_1.ckpt", "snapshot_2.ckpt", "snapshot_3.ckpt"]
    # saved at the ends of the cycles: epochs 1, 3, 5 (0-based), where the learning rate is near its minimum
    assert [torch.load(p, weights_only=True)["epoch"] for p in snaps] == [1, 3, 5]
    assert metrics["members"] == 3 and len(metrics["test/acc_members"]) == 3
    assert len(set(metrics["test/acc_members"])) > 1 or metrics["test/acc_members"][0] == 1.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["ensemble_gain"] == pytest.approx(saved["test/acc_ensemble"] - saved["test/acc_members_mean"])
    assert metrics["stop_reason"] == "max_epochs"  # early stopping is off for snapshot ensembles
    # the learning rate at each epoch's start: a restart at lr0 every 2 epochs, half-way down the cosine between
    import csv

    with open(tmp_path / "csv" / "metrics.csv") as f:
        lrs = [float(r["lr-Adam"]) for r in csv.DictReader(f) if r.get("lr-Adam")]
    assert lrs == pytest.approx([1e-3, 5e-4] * 3, rel=1e-6)


def test_cycles_of_unequal_length_share_the_epochs_as_evenly_as_possible():
    assert cycle_lengths(6, 5) == [2, 1, 1, 1, 1] and cycle_ends(6, 5) == [2, 3, 4, 5, 6]
    assert cycle_lengths(10, 3) == [4, 3, 3] and cycle_lengths(6, 3) == [2, 2, 2] and cycle_lengths(5, 5) == [1] * 5
    with pytest.raises(ValueError, match="ensemble.cycles=5 needs trainer.max_epochs >= 5"):
        cycle_lengths(4, 5)
    with pytest.raises(ValueError, match=r"^cycles=0: snapshot cycles must be an integer >= 1$"):
        cycle_lengths(4, 0)


def test_ensemble_settings_out_of_range_are_refused_naming_the_setting():
    from trainlab.ensembles.averaging import EMA, SWA
    from trainlab.ensembles.independent import Independent
    from trainlab.ensembles.snapshot import SnapshotEnsemble

    for make, message in [
        (lambda: Independent(size=1), "size=1: members of the ensemble must be an integer >= 2"),
        (
            lambda: Independent(vectorize="no"),
            "vectorize='no': whether the members run as one batched network must be true or false",
        ),
        (lambda: SnapshotEnsemble(cycles=0), "cycles=0: snapshot cycles must be an integer >= 1"),
        (lambda: SnapshotEnsemble(keep=0), "keep=0: snapshots kept (the last ones) must be an integer >= 1"),
        (lambda: SnapshotEnsemble(cycles=5, keep=6), "ensemble.keep=6 must be <= ensemble.cycles=5"),  # the pair
        (lambda: EMA(decay=1.0), "decay=1.0: EMA decay must be a number in (0, 1)"),
        (
            lambda: SWA(swa_epoch_start=0.0),
            "swa_epoch_start=0.0: when SWA starts (share of the epochs) must be a number in (0, 1)",
        ),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            make()


def test_snapshot_schedule_with_unequal_cycles_restarts_the_cosine_at_every_boundary():
    """6 epochs of 20 steps in 5 cycles: cycles of 40, 20, 20, 20, 20 steps starting at steps 0, 40, 60, 80, 100."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    sched = snapshot_schedule(opt, total_steps=120, cycles=5, epochs=6)
    lrs = []
    for _ in range(120):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    starts, lengths = [0, 40, 60, 80, 100], [40, 20, 20, 20, 20]
    expected = []
    for length in lengths:
        expected += [0.1 * (math.cos(math.pi * i / length) + 1) for i in range(length)]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert [lrs[s] for s in starts] == pytest.approx([0.2] * 5)  # a restart at lr0 at every cycle boundary
    assert [lrs[s - 1] for s in starts[1:]] == pytest.approx(
        [0.1 * (math.cos(math.pi * 39 / 40) + 1)] + [0.1 * (math.cos(math.pi * 19 / 20) + 1)] * 3
    )  # just before each restart: near 0
    assert lrs[20] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.1)  # half-way down each cosine


def test_snapshot_run_with_epochs_not_divisible_by_cycles_saves_a_snapshot_per_cycle(make_cfg, tmp_path):
    """max_epochs=6 with the default 5 cycles (Huang et al. need not divide): cycles of 2, 1, 1, 1, 1 epochs."""
    cfg = make_cfg(
        "ensemble=snapshot",
        "trainer.max_epochs=6",
        "logger=csv",
        "callbacks.lr_monitor.logging_interval=step",
        "trainer.log_every_n_steps=1",
    )
    assert cfg.ensemble.cycles == 5
    metrics = train(cfg)
    snaps = sorted((tmp_path / "snapshots").glob("snapshot_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))
    assert [p.name for p in snaps] == [f"snapshot_{k}.ckpt" for k in range(1, 6)]
    assert [torch.load(p, weights_only=True)["epoch"] for p in snaps] == [1, 2, 3, 4, 5]  # 0-based epoch ends
    assert metrics["members"] == 5 and metrics["epochs"] == 6
    import csv

    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("lr-Adam")]
    steps_per_epoch = metrics["steps"] // 6
    assert steps_per_epoch * 6 == metrics["steps"] == len(rows)  # one learning rate per optimizer step
    lrs = [float(r["lr-Adam"]) for r in sorted(rows, key=lambda r: int(r["step"]))]
    starts = [0, 2 * steps_per_epoch, 3 * steps_per_epoch, 4 * steps_per_epoch, 5 * steps_per_epoch]
    ends = [*starts[1:], 6 * steps_per_epoch]
    expected = []
    for start, end in zip(starts, ends, strict=True):
        expected += [5e-4 * (math.cos(math.pi * (t - start) / (end - start)) + 1) for t in range(start, end)]
    assert lrs == pytest.approx(expected, rel=1e-5)
    assert [lrs[s] for s in starts] == pytest.approx([1e-3] * 5)  # restarts at every boundary, in steps


@pytest.mark.slow
def test_snapshot_with_six_epochs_runs_end_to_end_with_the_defaults(tmp_path):
    """What a user types: the default 5 cycles, 6 epochs, progress bar and config tree on."""
    import os
    import subprocess

    from .conftest import BIN

    proc = subprocess.run(
        [str(BIN / "trainlab-train"), "ensemble=snapshot", "trainer.max_epochs=6"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == [f"snapshot_{k}.ckpt" for k in range(1, 6)]
    assert json.loads((run_dir / "metrics.json").read_text())["members"] == 5
    assert "6 epochs in 5 cycles of 2, 1, 1, 1, 1 epochs" in proc.stdout + proc.stderr


class RecordWeights(Callback):
    """The raw weights of the network's first layer after every optimizer step / at the end of every epoch."""

    def __init__(self, key: str) -> None:
        self.key, self.steps, self.epochs = key, [], []

    def weight(self, pl_module) -> torch.Tensor:
        return dict(pl_module.named_parameters())[self.key].detach().clone()

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps.append(self.weight(pl_module))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(self.weight(pl_module))


def train_with_recorder(cfg, monkeypatch, key="net.layers.1.weight"):
    recorder = RecordWeights(key)
    build_callbacks = build.build_callbacks
    monkeypatch.setattr(build, "build_callbacks", lambda c: [recorder, *build_callbacks(c)])
    return train(cfg), recorder


def test_ema_weights_equal_the_closed_form_average(make_cfg, monkeypatch):
    decay = 0.9
    cfg = make_cfg("ensemble=ema", f"ensemble.decay={decay}", "trainer.max_epochs=1", "optimizer=sgd", "logger=none")
    metrics, recorder = train_with_recorder(cfg, monkeypatch)
    ema = recorder.steps[0]  # torch's AveragedModel starts from the first weights it sees
    for w in recorder.steps[1:]:
        ema = decay * ema + (1 - decay) * w
    tested = torch.load(metrics["best_ckpt"], weights_only=True)
    assert torch.allclose(tested["state_dict"]["net.layers.1.weight"], ema, atol=1e-6)
    assert torch.allclose(tested["current_model_state"]["net.layers.1.weight"], recorder.steps[-1], atol=1e-7)
    assert metrics["members"] == 1 and metrics["test/acc"] == pytest.approx(metrics["test/acc_ensemble"])


def test_swa_averages_epoch_weights_and_recomputes_batchnorm(make_cfg, monkeypatch, tmp_path):
    cfg = make_cfg(
        "ensemble=swa",
        "ensemble.swa_epoch_start=0.5",
        "trainer.max_epochs=4",
        "model=resnet",
        "model.depth=8",
        "model.width=4",
        "logger=none",
    )
    metrics, recorder = train_with_recorder(cfg, monkeypatch, key="net.stem.weight")
    assert metrics["best_ckpt"].endswith("swa.ckpt")
    swa = torch.load(metrics["best_ckpt"], weights_only=True)["state_dict"]
    # the equal average of the weights at the ends of epochs 2 and 3 (from 0.5 x 4 epochs on)
    assert len(recorder.epochs) == 4
    assert torch.allclose(swa["net.stem.weight"], torch.stack(recorder.epochs[2:]).mean(0), atol=1e-6)
    assert not torch.allclose(swa["net.stem.weight"], recorder.epochs[-1], atol=1e-6)
    # BatchNorm statistics: a fresh cumulative pass over the training images with the averaged weights
    module = build.build_module(cfg)
    module.load_state_dict(swa)
    norms = {n: m for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for m in norms.values():
        m.reset_running_stats()
        m.momentum = None
    dm = build.build_datamodule(cfg)
    dm.setup()
    module.train()
    with torch.no_grad():
        for x in dm.splits["train"][0].split(dm.batch_size):
            module(x)
    assert len(norms) > 3
    for name, m in norms.items():
        assert torch.allclose(swa[f"{name}.running_mean"], m.running_mean, atol=1e-5), name
        assert torch.allclose(swa[f"{name}.running_var"], m.running_var, atol=1e-4), name


def members_of(ensemble, make_member) -> list[torch.nn.Module]:
    """Standalone copies of a vectorised ensemble's members, with their trained weights."""
    out = []
    for k in range(ensemble.size):
        member = make_member()
        state = {name: p[k] for name, p in zip(ensemble._names, ensemble.stacked, strict=True)}
        member.load_state_dict(
            state
            | {
                n: b[k]
                for n, b in zip(
                    ensemble._buffer_names,
                    [getattr(ensemble, f"stacked_buffer_{i}") for i in range(len(ensemble._buffer_names))],
                    strict=True,
                )
            }
        )
        out.append(member.eval())
    return out


def test_independent_ensemble_members_differ_and_their_average_is_the_prediction(make_cfg, tmp_path):
    from trainlab.models.mlp import MLP

    metrics = train(
        make_cfg("ensemble=independent", "ensemble.size=3", "trainer.max_epochs=3", "model.width=32", "logger=none")
    )
    module = build.build_module(make_cfg("ensemble=independent", "ensemble.size=3", "model.width=32", subdir="m"))
    module.load_state_dict(torch.load(metrics["best_ckpt"], weights_only=True)["state_dict"])
    module.eval()
    ensemble = module.net
    assert ensemble.vectorized and metrics["members"] == 3
    members = members_of(ensemble, lambda: MLP((1, 8, 8), 10, depth=2, width=32))
    dm = build.build_datamodule(make_cfg(subdir="d"))
    dm.setup()
    x, y = dm.splits["test"]
    with torch.no_grad():
        inputs = module.preprocess(x)
        one_by_one = torch.stack([m(inputs).softmax(-1) for m in members])
        prediction = module(x).exp()  # the ensemble's output: log of the mean probability
    assert torch.allclose(prediction, one_by_one.mean(0), atol=1e-5)
    # members start from different seeds and end with different predictions
    assert not torch.equal(one_by_one[0].argmax(-1), one_by_one[1].argmax(-1))
    accs = [(p.argmax(-1) == y).float().mean().item() for p in one_by_one]
    assert metrics["test/acc_members"] == pytest.approx(accs, abs=1e-6)
    assert metrics["test/acc_ensemble"] == pytest.approx((one_by_one.mean(0).argmax(-1) == y).float().mean().item())


def test_members_start_from_their_own_seeds(make_cfg):
    from trainlab.ensembles.independent import IndependentEnsemble

    net = build.build_net(make_cfg("ensemble=independent", "ensemble.size=3", "seed=10"))
    assert isinstance(net, IndependentEnsemble)
    first = net.stacked[0]  # the first layer's weights of the 3 members
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])
    torch.manual_seed(11)  # member 1 is the network that seed 11 builds
    single = build.build_net(make_cfg("seed=11", subdir="single"))
    assert torch.equal(first[1], single.layers[1].weight)


def test_vectorised_and_looped_members_compute_the_same(make_cfg):
    from trainlab.ensembles.independent import IndependentEnsemble
    from trainlab.models.mlp import MLP

    members = []
    for k in range(3):
        torch.manual_seed(k)
        members.append(MLP((1, 8, 8), 10, depth=2, width=16))
    import copy

    vec = IndependentEnsemble(copy.deepcopy(members)).eval()
    loop = IndependentEnsemble(copy.deepcopy(members), vectorize=False).eval()
    x = torch.rand(5, 1, 8, 8)
    assert vec.vectorized and not loop.vectorized
    assert torch.allclose(vec.member_logits(x), loop.member_logits(x), atol=1e-6)
    assert torch.allclose(vec(x), loop(x), atol=1e-6)


def test_weight_penalty_of_a_vectorised_ensemble_is_the_sum_over_members():
    from trainlab.ensembles.independent import IndependentEnsemble
    from trainlab.models.mlp import MLP
    from trainlab.regularizers.penalties import WeightPenalty

    members = [MLP((4,), 3, depth=1, width=5) for _ in range(3)]
    import copy

    ensemble = IndependentEnsemble(copy.deepcopy(members))
    penalty = WeightPenalty(l1=0.1, l2=0.2)
    assert penalty(ensemble).item() == pytest.approx(sum(penalty(m).item() for m in members), rel=1e-6)


@pytest.mark.parametrize("kind", ["independent", "ema"])
def test_eval_rebuilds_an_ensemble_run_from_its_checkpoint(make_cfg, kind):
    from trainlab.eval import evaluate

    extra = ["ensemble.size=2"] if kind == "independent" else []
    trained = train(make_cfg(f"ensemble={kind}", *extra, "trainer.max_epochs=2", "logger=none", subdir="t"))
    evaluated = evaluate(make_cfg(f"ckpt_path={trained['best_ckpt']}", config_name="eval", subdir="e"))
    assert float(evaluated["test/acc"]) == pytest.approx(float(trained["test/acc"]), abs=1e-7)
    assert float(trained["test/acc"]) == pytest.approx(trained["test/acc_ensemble"], abs=1e-7)
