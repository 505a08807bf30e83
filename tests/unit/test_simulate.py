import math

import numpy as np
import pandas as pd
import pytest
import torch

from connectome_gnn.config import validate
from connectome_gnn.io import DataError
from connectome_gnn.simulate import Simulation
from connectome_gnn.simulate.connectivity import (
    load_connectivity,
    lorentz_exponent,
    random_connectivity,
)
from connectome_gnn.simulate.signal import PDEN2, neuron_types
from connectome_gnn.stages import run_simulation


def test_pden2_step_by_hand():
    W = np.array([[0.0, 0.5, 0.0], [0.2, 0.0, -0.3], [0.0, 1.0, 0.0]])
    g, s, c = [10.0, 10.0, 5.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]
    u = torch.tensor([1.0, 0.0, -1.0])
    du = PDEN2(W, g, s, c)(u).double().numpy()
    t1 = math.tanh(1.0)
    expected = [
        -1.0 * 1.0 + 1.0 * t1 + 10.0 * (0.5 * 0.0),  # neuron 0 hears neuron 1 (u=0)
        -1.0 * 0.0 + 2.0 * 0.0 + 10.0 * (0.2 * t1 + (-0.3) * (-t1)),
        -2.0 * (-1.0) + 1.0 * (-t1) + 5.0 * (1.0 * 0.0),
    ]
    np.testing.assert_allclose(du, expected, rtol=1e-6)


def test_neuron_types_contiguous_blocks():
    np.testing.assert_array_equal(neuron_types(10, 4), [0, 0, 1, 1, 2, 2, 3, 3, 3, 3])
    assert np.bincount(neuron_types(1000, 4)).tolist() == [250] * 4


def test_lorentz_connectivity_scale_and_diagonal():
    rng = np.random.default_rng(0)
    w = random_connectivity(300, "Lorentz", 1.0, rng)
    assert w.dtype == np.float32 and w.shape == (300, 300)
    assert np.all(np.diag(w) == 0)
    assert np.abs(w).max() <= 25 / 300**0.7 + 1e-6
    assert lorentz_exponent(1000) == 0.7 and lorentz_exponent(3000) == 0.675
    assert lorentz_exponent(8000) == 0.66 and lorentz_exponent(10000) == 0.5


@pytest.mark.parametrize("f", [0.5, 0.1, 0.05])
def test_filling_factor(f):
    n = 300
    w = random_connectivity(n, "Lorentz", f, np.random.default_rng(1))
    off = n * (n - 1)
    measured = np.count_nonzero(w) / off
    # binomial std is sqrt(f(1-f)/off) <= 0.0017; |x|>25 zeroing removes ~2.5 % more
    assert abs(measured - f * 0.975) < 0.01


def test_simulation_outputs_and_determinism(tmp_path, tiny_model_cfg):
    m1 = run_simulation(tiny_model_cfg, 1.0, 3, tmp_path / "a")
    run_simulation(tiny_model_cfg, 1.0, 3, tmp_path / "b")
    run_simulation(tiny_model_cfg, 1.0, 4, tmp_path / "c")
    a, b, c = Simulation(tmp_path / "a"), Simulation(tmp_path / "b"), Simulation(tmp_path / "c")
    np.testing.assert_array_equal(a.read("u"), b.read("u"))
    np.testing.assert_array_equal(a.dense_W(), b.dense_W())
    assert not np.array_equal(a.dense_W(), c.dense_W())
    u, du = a.read("u"), a.read("du")
    assert u.shape == (1500, 40) and u.dtype == np.float32
    assert m1["n_train_frames"] == 1350
    # stored derivative is the exact right-hand side, and frames follow the Euler step
    dyn = a.family and PDEN2(a.dense_W(), a.neurons["g"], a.neurons["s"], a.neurons["c"])
    np.testing.assert_allclose(dyn(torch.from_numpy(u[:50])).numpy(), du[:50], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(u[1:50], u[:49] + 0.01 * du[:49], rtol=1e-5, atol=1e-5)
    assert (tmp_path / "a" / "simulation.png").stat().st_size > 1000
    assert set(a.types) == {0, 1, 2, 3}
    # selected frames, read block by block: the same rows as the full read, repeats included
    idx = [0, 5, 5, 99, 100, 101, 1499]
    np.testing.assert_array_equal(a.read_frames("du", idx, block=100), du[idx])
    assert a.read_frames("u", []).shape == (0, 40)
    with pytest.raises(ValueError, match="sorted"):
        a.read_frames("u", [3, 1])


def test_sparse_simulation_keeps_fraction(tmp_path, tiny_model_cfg):
    meta = run_simulation(tiny_model_cfg, 0.25, 0, tmp_path / "s")
    assert 0.15 < meta["filling_factor_measured"] < 0.35


def test_connectivity_from_files(tmp_path):
    w = np.zeros((3, 3), dtype=np.float32)
    w[0, 1], w[2, 0] = 0.5, -1.5
    np.save(tmp_path / "w.npy", w)
    torch.save(torch.from_numpy(w), tmp_path / "w.pt")
    pd.DataFrame({"source": [1, 0], "target": [0, 2], "weight": [0.5, -1.5]}).to_csv(
        tmp_path / "w.csv", index=False
    )
    for name in ("w.npy", "w.pt", "w.csv"):
        np.testing.assert_array_equal(load_connectivity(tmp_path / name, 3), w)


def test_connectivity_file_errors(tmp_path):
    np.save(tmp_path / "bad_shape.npy", np.zeros((3, 4)))
    bad = np.zeros((3, 3))
    bad[0, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    pd.DataFrame({"src": [0], "target": [1], "weight": [1.0]}).to_csv(
        tmp_path / "cols.csv", index=False
    )
    pd.DataFrame({"source": [0], "target": [7], "weight": [1.0]}).to_csv(
        tmp_path / "idx.csv", index=False
    )
    (tmp_path / "w.txt").write_text("1 2 3")
    cases = {
        "bad_shape.npy": "shape",
        "nan.npy": "non-finite",
        "cols.csv": "lacks columns",
        "idx.csv": "outside",
        "w.txt": "unsupported",
        "missing.npy": "not found",
    }
    for name, msg in cases.items():
        with pytest.raises(DataError, match=msg) as info:
            load_connectivity(tmp_path / name, 3)
        assert name in str(info.value)


def test_simulation_with_user_connectivity(tmp_path):
    w = random_connectivity(20, "Gaussian", 1.0, np.random.default_rng(0))
    np.save(tmp_path / "w.npy", w)
    cfg = validate(
        {
            "family": "signal",
            "n_neurons": 20,
            "n_frames": 200,
            "burn_in": 10,
            "connectivity": "file",
            "connectivity_file": str(tmp_path / "w.npy"),
        },
        "signal.model",
    )
    run_simulation(cfg, 1.0, 0, tmp_path / "sim")
    np.testing.assert_array_equal(Simulation(tmp_path / "sim").dense_W(), w)


def test_truncated_store_is_reported(tmp_path, tiny_model_cfg):
    run_simulation(tiny_model_cfg, 1.0, 0, tmp_path / "sim")
    import shutil

    shutil.rmtree(tmp_path / "sim" / "activity.zarr" / "u")
    with pytest.raises(DataError, match="activity.zarr"):
        Simulation(tmp_path / "sim").read("u")


def test_noiseless_simulation_keeps_its_settings(tmp_path, tiny_model_cfg):
    """The noise keys are optional: without them the settings are those of before them."""
    meta = run_simulation(tiny_model_cfg, 1.0, 3, tmp_path / "a")
    assert "intrinsic_noise" not in meta and "measurement_noise" not in meta
    zero = run_simulation(
        {**tiny_model_cfg, "intrinsic_noise": 0.0, "measurement_noise": 0.0}, 1.0, 3, tmp_path / "z"
    )
    np.testing.assert_array_equal(
        Simulation(tmp_path / "a").read("u"), Simulation(tmp_path / "z").read("u")
    )
    assert zero["n_edges"] == meta["n_edges"]


def test_intrinsic_noise_is_seeded_euler_maruyama(tmp_path, tiny_model_cfg):
    sigma = 0.5
    cfg = validate({**tiny_model_cfg, "intrinsic_noise": sigma}, "signal.model")
    meta = run_simulation(cfg, 1.0, 3, tmp_path / "a")
    run_simulation(cfg, 1.0, 3, tmp_path / "b")
    run_simulation(cfg, 1.0, 4, tmp_path / "c")
    a, b = Simulation(tmp_path / "a"), Simulation(tmp_path / "b")
    u, du = a.read("u"), a.read("du")
    np.testing.assert_array_equal(u, b.read("u"))
    assert not np.array_equal(u, Simulation(tmp_path / "c").read("u"))
    assert meta["intrinsic_noise"] == sigma and meta["du"] == "drift f(u_k)"
    # du is the drift at u; the step residual is the noise, of std sigma sqrt(dt)
    dyn = PDEN2(a.dense_W(), a.neurons["g"], a.neurons["s"], a.neurons["c"])
    np.testing.assert_allclose(dyn(torch.from_numpy(u[:50])).numpy(), du[:50], rtol=1e-5, atol=1e-4)
    resid = u[1:] - u[:-1] - 0.01 * du[:-1]
    assert resid.std() == pytest.approx(sigma * math.sqrt(0.01), rel=0.03)
    assert abs(resid.mean()) < 0.003


def test_measurement_noise_gives_noisy_u_and_finite_differences(tmp_path, tiny_model_cfg):
    noise = 0.1
    cfg = validate({**tiny_model_cfg, "measurement_noise": noise}, "signal.model")
    clean_meta = run_simulation(tiny_model_cfg, 1.0, 3, tmp_path / "clean")
    meta = run_simulation(cfg, 1.0, 3, tmp_path / "noisy")
    clean, noisy = Simulation(tmp_path / "clean"), Simulation(tmp_path / "noisy")
    u, du = noisy.read("u"), noisy.read("du")
    # the state is the noiseless simulation's, the saved u has the noise on top
    np.testing.assert_allclose(noisy.read("u_clean"), clean.read("u"), rtol=1e-6, atol=1e-6)
    assert (u - clean.read("u")).std() == pytest.approx(noise, rel=0.03)
    # du: (u[k+1] - u[k]) / dt of the noisy u, across chunk borders too (chunks of 2000 > 1500:
    # check with the stored frames, the last one included through one extra simulated state)
    np.testing.assert_allclose(du[:-1], (u[1:] - u[:-1]) / 0.01, rtol=1e-4, atol=1e-2)
    assert np.isfinite(du[-1]).all()
    assert meta["measurement_noise"] == noise and clean_meta["n_edges"] == meta["n_edges"]


def test_measurement_noise_across_chunks(tmp_path, tiny_model_cfg):
    cfg = validate(
        {**tiny_model_cfg, "measurement_noise": 0.05, "chunk_frames": 300}, "signal.model"
    )
    run_simulation(cfg, 1.0, 3, tmp_path / "n")
    sim = Simulation(tmp_path / "n")
    u, du = sim.read("u"), sim.read("du")
    assert u.shape == (1500, 40)
    np.testing.assert_allclose(du[:-1], (u[1:] - u[:-1]) / 0.01, rtol=1e-4, atol=1e-2)
