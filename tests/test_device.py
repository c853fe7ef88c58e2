"""Where the networks run: --device on every verb that runs one, CPU everywhere, CUDA when there is a GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fewpick.cli import app
from fewpick.device import cpu_state, mixed_precision, resolve_device
from fewpick.errors import InputError
from fewpick.io import Image, make_picks, write_mrc, write_picks
from fewpick.pickers import fewshot, pu
from fewpick.simulate import SimpleMicrographConfig, simulate_simple_micrograph

CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here")


def test_device_names_resolve_and_a_missing_gpu_is_one_clear_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device(None).type == ("cuda" if CUDA else "cpu")
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(InputError, match="must be a number"):
        resolve_device("cuda:x")
    if CUDA:
        assert resolve_device("cuda") == torch.device("cuda:0")
        n = torch.cuda.device_count()
        with pytest.raises(InputError, match=f"sees {n} GPU"):
            resolve_device(f"cuda:{n}")
    else:
        with pytest.raises(InputError, match="--device cpu"):
            resolve_device("cuda")
        with pytest.raises(InputError, match="--device cpu"):
            resolve_device("cuda:1")


def test_mixed_precision_is_a_no_op_on_the_cpu():
    x = torch.randn(4, 4)
    with mixed_precision(torch.device("cpu")):
        y = x @ x
    assert y.dtype == torch.float32
    assert torch.equal(y, x @ x)


@pytest.fixture(scope="module")
def small_set():
    cfg = SimpleMicrographConfig(size=(384, 384), diameter=32, n_particles=25, snr=0.01)
    ims, truths = [], []
    for i in range(2):
        image, centres, _ = simulate_simple_micrograph(cfg, seed=40 + i)
        ims.append(Image(image.astype(np.float32), None, f"m{i}"))
        truths.append(make_picks(f"m{i}", centres[:, 0], centres[:, 1]))
    return ims, truths, cfg


def _pu_settings(cfg, **kw):
    return pu.PUSettings(diameter=cfg.diameter, expected_particles=cfg.n_particles, steps=20, steps_per_epoch=10,
                         threads=1, **kw)


def test_pu_on_the_cpu_by_name_equals_the_default_without_a_gpu(small_set, tmp_path):
    ims, truths, cfg = small_set
    labels = truths[0].iloc[:8]
    a = pu.train(ims, labels, _pu_settings(cfg), tmp_path / "a.pt", device="cpu")
    state = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    assert state and all(v.device.type == "cpu" for v in state.values())
    assert all(v.device.type == "cpu" for v in cpu_state(a.net).values())
    if not CUDA:
        b = pu.train(ims, labels, _pu_settings(cfg), tmp_path / "b.pt")  # auto: the CPU here
        for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
            assert torch.equal(va, vb), k


def test_cli_refuses_a_gpu_that_is_not_there_before_writing_anything(small_set, tmp_path):
    if CUDA:
        pytest.skip("this machine has a GPU")
    ims, truths, cfg = small_set
    write_mrc(tmp_path / "m0.mrc", ims[0].data, 1.0)
    write_picks(truths[0].iloc[:8], tmp_path / "labels.star")
    out = tmp_path / "model.pt"
    res = CliRunner().invoke(app, ["train", str(tmp_path / "m0.mrc"), "--labels", str(tmp_path / "labels.star"),
                                   "-d", "32", "-n", "25", "--steps", "5", "--out", str(out), "--device", "cuda"])
    assert res.exit_code == 2
    assert "error:" in res.output and "--device cpu" in res.output and "Traceback" not in res.output
    assert not out.exists()
    for verb in (["pick"], ["fewshot", "pick"], ["fewshot", "train"], ["tomo", "train"], ["tomo", "pick"],
                 ["explore", "run"], ["fewshot", "pretrain"]):
        res = CliRunner().invoke(app, [*verb, "--help"])
        assert "--device" in res.output, verb


@needs_gpu
def test_pu_on_a_gpu_matches_the_cpu(small_set, tmp_path):
    ims, truths, cfg = small_set
    labels = truths[0].iloc[:8]
    cpu = pu.train(ims, labels, _pu_settings(cfg, seed=3), tmp_path / "cpu.pt", device="cpu")
    gpu = pu.train(ims, labels, _pu_settings(cfg, seed=3), tmp_path / "gpu.pt", device="cuda")
    assert next(gpu.net.parameters()).is_cuda
    # model files hold CPU tensors, whatever device trained them
    state = torch.load(tmp_path / "gpu.pt", weights_only=True)["state_dict"]
    assert all(v.device.type == "cpu" for v in state.values())
    # a model trained on the GPU loads on the CPU
    back = pu.load_model(tmp_path / "gpu.pt", "cpu")
    assert not next(back.net.parameters()).is_cuda
    # the same weights score the same on either device (full precision)
    on_gpu = pu.load_model(tmp_path / "cpu.pt", "cuda")
    on_gpu.mixed_precision = False
    a, _ = pu.score_map(cpu, ims[1].data)
    b, _ = pu.score_map(on_gpu, ims[1].data)
    assert np.abs(a - b).max() < 1e-2 * max(1.0, np.abs(a).max())
    # the same seed and the same batches on either device: the same model, up to the rounding of the GPU's
    # kernels (TF32 convolutions on recent GPUs), which Adam's steps carry into the weights: compared by what the
    # two models score, not weight by weight
    a_gpu, _ = pu.score_map(back, ims[1].data)
    assert np.corrcoef(a.ravel(), a_gpu.ravel())[0, 1] > 0.9


@needs_gpu
def test_fewshot_on_a_gpu_matches_the_cpu(small_set, tmp_path):
    ims, truths, cfg = small_set
    t = truths[0]
    inside = t[t.x.between(30, 350) & t.y.between(30, 350)].iloc[:6]
    s = fewshot.FewShotSettings(diameter=cfg.diameter, pretrain_steps=10, finetune_steps=10, pretrain_batch=16,
                                unlabeled=16, train_threads=1, threads=1, distill_steps=20)
    fewshot.train(ims[0], inside, s, tmp_path / "fs.pt", device="cpu")
    cpu = fewshot.load_model(tmp_path / "fs.pt", "cpu")
    gpu = fewshot.load_model(tmp_path / "fs.pt", "cuda")
    gpu.mixed_precision = False
    a = fewshot.score_map(cpu, ims[1])[0]
    b = fewshot.score_map(gpu, ims[1])[0]
    assert np.abs(a - b).max() < 1e-3
    from fewpick.pickers.fewshot import fast as ff  # the fast network too

    binned = ff.prepare_binned(ims[1].data, int(cpu.fast_info["factor"]))
    assert np.abs(ff.fast_scores(cpu.fast_net, binned) - ff.fast_scores(gpu.fast_net, binned)).max() < 1e-3
    fewshot.train(ims[0], inside, s, tmp_path / "fs_gpu.pt", device="cuda")
    assert fewshot.load_model(tmp_path / "fs_gpu.pt", "cpu").exemplars.shape == cpu.exemplars.shape


def test_gpu_benchmark_runs_on_the_cpu_against_itself(tmp_path):
    """bench/gpu.py, tiny, on the CPU twice: the same seeds give the same picks."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "gpu.py"
    res = subprocess.run([sys.executable, str(bench), "--devices", "cpu", "cpu", "--size", "768", "--train", "2",
                          "--test", "1", "--labels", "8", "--pu-steps", "20", "--fewshot-pretrain-steps", "5", "--fewshot-distill-steps", "5",
                          "--fewshot-steps", "5", "--threads", "1", "--work", str(tmp_path / "w"), "--results",
                          str(tmp_path / "r")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    out = json.loads((tmp_path / "r" / "gpu.json").read_text())
    for picker in ("pu", "fewshot"):
        r = out[picker]
        assert r["rows"][0]["auprc"] == pytest.approx(r["rows"][1]["auprc"])
        for k in ("same_model_full", "same_model_mixed"):
            assert r[k]["agreement_f1"] == 1.0 and r[k]["max_score_diff"] == 0.0
        assert r["trained_apart"]["agreement_f1"] == 1.0
    assert "| full precision | 1.0000 |" in (tmp_path / "r" / "gpu.md").read_text()


@needs_gpu
def test_tomogram_picker_and_exploration_embeddings_train_on_a_gpu(tmp_path):
    from dataclasses import replace

    from fewpick.explore.embed import embed, train_simsiam
    from fewpick.io import read_volume
    from fewpick.pickers import tomo
    from fewpick.simulate.tomogram import TOMO_PRESETS, simulate_tomogram

    preset = replace(TOMO_PRESETS["easy"], shape=(48, 128, 128), n_particles=12, n_filaments=(0, 0),
                     species=("ribosome", "cct"))
    sim = simulate_tomogram(preset, seed=7, name="t0")
    write_mrc(tmp_path / "t0.mrc", sim.tomogram, sim.voxel_size)
    im = read_volume(tmp_path / "t0.mrc")
    t = sim.truth[sim.truth.species == "ribosome"]
    labels = make_picks("t0", t.x, t.y, t.z).iloc[:6]
    s = tomo.TomoSettings(diameter=float(t.diameter_px.iloc[0]), epochs=1, steps_per_epoch=5, batch=2, box=32, depth=5,
                          seed=0)
    model = tomo.train([im], labels, s, device="cuda")
    assert next(model.net.parameters()).is_cuda
    tomo.save_model(model, tmp_path / "tomo.pt")
    cpu = tomo.load_model(tmp_path / "tomo.pt", "cpu")
    a, b = tomo.heat_map(cpu, im.data), tomo.heat_map(model, im.data)
    assert np.abs(a - b).max() < 1e-3
    inputs = np.random.default_rng(0).normal(size=(64, 32, 32)).astype(np.float32)
    net, history = train_simsiam(inputs, epochs=1, batch=32, device="cuda")
    assert len(history) == 1 and embed(net, inputs).shape == (64, 128)
