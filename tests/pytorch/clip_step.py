"""The gradients of thaw's MLP on one batch, clipped by torch.nn.utils.clip_grad_norm_, as the
reference for thaw's `grad_clip_norm`. Weights are in burn's layout (Linear weight [in, out]).
Usage: clip_step.py CASE.json; prints {"norm": total norm before clipping, "grads": {name:
flat values}} as JSON, for the parameters that are not frozen."""
import json
import sys

import torch

case = json.load(open(sys.argv[1]))
params = {}
for p in case["params"]:
    t = torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"])
    params[p["name"]] = t.requires_grad_(p["name"] not in case["frozen"])
x = torch.tensor(case["x"], dtype=torch.float32).reshape(case["x_shape"]).flatten(1)
labels = torch.tensor(case["labels"])

h = x
for layer in ["fc1", "fc2", "head"]:
    h = h @ params[layer + ".weight"] + params[layer + ".bias"]
    if layer != "head":
        h = torch.relu(h)
loss = torch.nn.functional.cross_entropy(h, labels)
loss.backward()
trainable = {n: p for n, p in params.items() if p.requires_grad}
norm = torch.nn.utils.clip_grad_norm_(list(trainable.values()), case["max_norm"])
print(json.dumps({
    "norm": float(norm),
    "grads": {n: p.grad.flatten().tolist() for n, p in trainable.items()},
}))
