"""Writes a randomly initialised torchvision resnet18 (10 classes, BatchNorm statistics that
are not their defaults) in the formats thaw reads, an input batch and PyTorch's eval-mode
logits for it. Usage: write_resnet18.py OUT_DIR"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

out = sys.argv[1]
torch.manual_seed(0)
model = torchvision.models.resnet18(num_classes=10)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
model.eval()
state = model.state_dict()
torch.save(state, os.path.join(out, "r18.pth"))
torch.save({"state_dict": state, "epoch": 3}, os.path.join(out, "wrapped.pth"))
torch.save({"state_dict": {"model." + k: v for k, v in state.items()}}, os.path.join(out, "lightning.ckpt"))
save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(out, "r18.safetensors"))
# A pickle that names a global no state dict has: a reader must refuse it, never call it.
torch.save({"conv1.weight": state["conv1.weight"], "hook": os.system}, os.path.join(out, "evil.pth"))

x = torch.randn(2, 3, 64, 64)
with torch.no_grad():
    y = model(x)
save_file({"x": x.contiguous(), "y": y.contiguous()}, os.path.join(out, "io.safetensors"))

# Three PNG images of 64x64 pixels and PyTorch's probabilities for them at image_size 56, with
# thaw's validation preprocessing: resize to round(56 * 8 / 7) = 64 (here none), centre crop
# 56, ImageNet mean and standard deviation.
import json

import numpy as np
from PIL import Image

rng = np.random.default_rng(1)
paths, batch = [], []
for i in range(3):
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    path = os.path.join(out, f"image{i}.png")
    Image.fromarray(pixels).save(path)
    paths.append(path)
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    array = array[4:60, 4:60, :]
    array = (array - np.array([0.485, 0.456, 0.406], dtype=np.float32)) / np.array([0.229, 0.224, 0.225], dtype=np.float32)
    batch.append(torch.from_numpy(array.transpose(2, 0, 1).copy()))
with torch.no_grad():
    probabilities = torch.softmax(model(torch.stack(batch)), dim=1)
with open(os.path.join(out, "predict.json"), "w") as f:
    json.dump({"images": paths, "probabilities": probabilities.tolist()}, f)
