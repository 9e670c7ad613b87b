"""How each lab model's Flax variables are named in its PyTorch lab model's state_dict (no torch needed).

The lab CNNs name their convolutions ``layerN.0`` (jaxnn: ``layerN/conv``); DeepCNN registers ``fc1`` twice
(``self.fc1`` and ``layer4.0``), so its state_dict repeats it under the alias. Every other lab model (FolderCNN,
VGG, ResNet, the RNN models, Seq2Seq) carries PyTorch's names already. Every lab model flattens its feature map in
PyTorch's (C, H, W) order before its first Linear.
"""

from __future__ import annotations

from jaxnn.models.cnn import DeepCNN, MnistCNN

CNN_NAMES = {
    MnistCNN: dict(
        rename={"layer1/conv": "layer1.0", "layer2/conv": "layer2.0"}, flatten_chw={"fc": (64, 7, 7)}, aliases={}
    ),
    DeepCNN: dict(
        rename={"layer1/conv": "layer1.0", "layer2/conv": "layer2.0", "layer3/conv": "layer3.0"},
        flatten_chw={"fc1": (128, 4, 4)},
        aliases={"layer4.0": "fc1"},
    ),
}


def lab_names(model, *sample_args, **sample_kwargs) -> dict:
    """``rename``, ``flatten_chw`` and ``aliases`` (PyTorch's alias layer -> the layer it repeats) of a lab model,
    the arguments :func:`~jaxnn.interop.state_dict.to_state_dict` and ``from_state_dict`` take for it; found by
    tracing the model on the sample inputs (every flattened map in (C, H, W) order)."""
    from jaxnn.interop.state_dict import _trace

    spec = CNN_NAMES.get(type(model))
    if spec is not None:
        return {k: dict(v) for k, v in spec.items()}
    flatten = {}
    for path, (shape, before) in _trace(model, *sample_args, **sample_kwargs)[1].items():
        if before is not None and before[1] * before[2] > 1 and before[1] * before[2] * before[3] == shape[-1]:
            flatten["/".join(path)] = (before[3], before[1], before[2])
    return {"rename": {}, "flatten_chw": flatten, "aliases": {}}
