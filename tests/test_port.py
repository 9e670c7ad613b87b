"""The port guide's script (experiments/port_resnet.py): a .pth state_dict with torchvision's ResNet-18 names into
jaxnn, every layer compared with PyTorch, then fine-tuned with the VGG/ResNet recipe."""

import numpy as np
import pytest
import torch
from conftest import load_script

from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import load_state_dict_file


def test_port_guide_runs_on_a_pth_file(tmp_path, mnist_data_dir, capsys, no_compilation_cache):
    tm = torch_labs.resnet18(10, seed=1)
    torch.save(tm.state_dict(), tmp_path / "resnet18.pth")
    loaded = load_state_dict_file(tmp_path / "resnet18.pth")
    assert list(loaded) == list(tm.state_dict())  # torchvision's names, in its order
    argv = ["--weights", str(tmp_path / "resnet18.pth"), "--num_classes", "10", "--workdir", str(tmp_path / "run")]
    small = ["--train_subset", "128", "--test_subset", "64", "--batch_size", "64", "--data_dir", str(mnist_data_dir)]
    report, result = load_script("port_resnet").main(argv + small)
    out = capsys.readouterr().out
    assert report.ok and f"compare_with_torch: eval, float32, {len(report.rows)} of {len(report.rows)} agree" in out
    assert "output  layer4.1.bn2" in out and "grad    fc.weight" in out
    assert "training mode: " in out and np.isfinite(result.test_accuracy)


def test_a_pth_that_is_not_a_state_dict_is_refused(tmp_path):
    torch.save([torch.ones(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        load_state_dict_file(tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a .safetensors, .pth or .pt file"):
        (tmp_path / "w.bin").write_bytes(b"")
        load_state_dict_file(tmp_path / "w.bin")


def test_the_port_your_own_model_example_runs(capsys):
    """examples/port_your_model.py (run by make labs): a CNN with BatchNorm and a 2-layer LSTM written in PyTorch,
    the import's refusals, every layer, and training runs with PyTorch's optimizers, schedulers and clipping."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "port_your_model.py"
    spec = importlib.util.spec_from_file_location("port_your_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reports = module.main(["--steps", "3"])
    out = capsys.readouterr().out
    assert "the CNN without flatten_chw: refused: fc reads a flattened (H, W, C) = (3, 3, 16) map" in out
    assert "fc.weight transposed: refused" in out
    assert all(report.ok for report in reports.values())
    assert sum(r.kind == "loss" for r in reports["LSTM training run"].rows) == 3
    assert "all " in out and "comparisons agree" in out
