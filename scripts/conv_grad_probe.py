"""Each resnet18 convolution's gradients at batch 64, 224x224, on a GPU, three ways.

The weight gradient: burn's default (a convolution of the input with the output gradient as its
kernel), LibTorch's own (`convolution_backward`, cuDNN's backward-filter) and the autograd route
thaw's burn-tch takes (vendor/burn-tch/THAW.md). The input gradient: burn's way
(`conv_transpose2d`) and LibTorch's. Median milliseconds per convolution and their totals go to
DIR/conv-grad-probe.json; burn's weight gradient is checked against LibTorch's.

On a machine with a CUDA PyTorch: `python3 scripts/conv_grad_probe.py DIR`. It measured the
figures in vendor/burn-tch/THAW.md on an H200 (2026-11-29).
"""

import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

BATCH = 64
WAYS = ("burn_weight", "libtorch_weight", "autograd_weight", "burn_input", "libtorch_input", "forward")


def resnet18_convs():
    """(name, in channels, out channels, kernel, stride, padding, input size) of each conv."""
    convs = [("stem", 3, 64, 7, 2, 3, 224)] + [("layer1", 64, 64, 3, 1, 1, 56)] * 4
    for name, cin, cout, size in (("layer2", 64, 128, 56), ("layer3", 128, 256, 28), ("layer4", 256, 512, 14)):
        convs += [(name, cin, cout, 3, 2, 1, size), (f"{name}.downsample", cin, cout, 1, 2, 0, size)]
        convs += [(name, cout, cout, 3, 1, 1, size // 2)] * 3
    return convs


def median_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def probe(cin, cout, k, stride, pad, size):
    x = torch.randn(BATCH, cin, size, size, device="cuda")
    w = torch.randn(cout, cin, k, k, device="cuda")
    grad = torch.randn_like(F.conv2d(x, w, stride=stride, padding=pad))

    def libtorch(mask):
        args = (None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1, mask)
        return torch.ops.aten.convolution_backward(grad, x, w, *args)

    def burn_weight():
        swapped = F.conv2d(x.transpose(0, 1), grad.transpose(0, 1), padding=pad, dilation=stride)
        return swapped.transpose(0, 1)[:, :, :k, :k]

    def autograd_weight():
        leaf = w.detach().requires_grad_(True)
        out = F.conv2d(x, leaf, stride=stride, padding=pad)
        return torch.autograd.grad((out * grad).sum(), [leaf])[0]

    def burn_input():
        extra = (size + 2 * pad - k) % stride
        return F.conv_transpose2d(grad, w, stride=stride, padding=pad, output_padding=extra)

    ways = {
        "burn_weight": burn_weight,
        "libtorch_weight": lambda: libtorch([False, True, False])[1],
        "autograd_weight": autograd_weight,
        "burn_input": burn_input,
        "libtorch_input": lambda: libtorch([True, False, False])[0],
        "forward": lambda: F.conv2d(x, w, stride=stride, padding=pad),
    }
    ours, theirs = burn_weight(), ways["libtorch_weight"]()
    row = {way: median_ms(fn) for way, fn in ways.items()}
    row["burn_weight_relative_error"] = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    return row


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    rows, totals = [], dict.fromkeys(WAYS, 0.0)
    for name, cin, cout, k, stride, pad, size in resnet18_convs():
        row = {"conv": name, "shape": [cin, cout, k, stride, size], **probe(cin, cout, k, stride, pad, size)}
        for way in WAYS:
            totals[way] += row[way]
        rows.append(row)
    print(json.dumps(totals), flush=True)
    with open(os.path.join(out_dir, "conv-grad-probe.json"), "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "convs": rows, "totals_ms": totals}, f, indent=1)


if __name__ == "__main__":
    main()
