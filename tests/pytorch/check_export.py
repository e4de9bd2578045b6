"""Loads a thaw export into torchvision's resnet18 with strict key checking and prints the
largest difference between its logits and the expected ones, as JSON.
Usage: check_export.py EXPORT.safetensors IO.safetensors CLASSES"""
import json
import sys

import torch
import torchvision
from safetensors.torch import load_file

model = torchvision.models.resnet18(num_classes=int(sys.argv[3]))
model.load_state_dict(load_file(sys.argv[1]), strict=True)
model.eval()
io = load_file(sys.argv[2])
with torch.no_grad():
    logits = model(io["x"])
print(json.dumps({"max_diff": float((logits - io["y"]).abs().max())}))
