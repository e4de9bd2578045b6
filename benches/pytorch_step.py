"""PyTorch eager reference for benches/step_time.rs: ResNet-18 training-step times.

The model is torchvision's resnet18 (BasicBlock, [2, 2, 2, 2]) written in plain torch.nn, so
torchvision is not needed. The step is the one thaw's trainer takes: forward, cross-entropy,
top-1 count, backward, Adam update, loss read back to the host.

"Frozen" follows thaw's `freeze_group`: conv1, bn1 and layer1..layer3 stop requiring gradients
and their BatchNorm layers run in eval mode (running statistics used, not updated).

Prints one JSON object: median step times in milliseconds, the median of each phase (forward
with the loss read back, backward, Adam update) and every timed step.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
    from torch import nn
    import torch.nn.functional as F
except ImportError as err:
    print(json.dumps({"error": f"torch is not importable by {sys.executable}: {err}"}))
    sys.exit(2)

FROZEN = ["conv1", "bn1", "layer1", "layer2", "layer3"]


class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, classes, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(64, 64, 1)
        self.layer2 = self._stage(64, 128, 2)
        self.layer3 = self._stage(128, 256, 2)
        self.layer4 = self._stage(256, 512, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_ch, out_ch, stride):
        return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(classes, frozen):
    torch.manual_seed(0)
    model = ResNet18(classes)
    model.train()
    if frozen:
        for name in FROZEN:
            part = getattr(model, name)
            part.requires_grad_(False)
            for m in part.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
    return model


def step_times(args, frozen):
    device = torch.device(args.device)
    model = build(args.classes, frozen).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    # The batch starts in host memory, as a loader's does, and goes to the device each step
    # (on the CPU, `.to` is a no-op): thaw's step pays that copy too.
    images = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=gen)
    labels = torch.randint(0, args.classes, (args.batch,), generator=gen)
    # On a GPU the phases end when its queue has drained, not when the calls return.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    phases = {"upload": [], "forward": [], "backward": [], "update": []}
    for i in range(args.warmup + args.steps):
        begin = time.perf_counter()
        x, y = images.to(device), labels.to(device)
        sync()
        start = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum().item()
        value = loss.item()
        forward = time.perf_counter()
        loss.backward()
        sync()
        backward = time.perf_counter()
        optim.step()
        sync()
        update = time.perf_counter()
        if value != value or correct < 0:
            raise SystemExit(f"non-finite loss at step {i}")
        if i >= args.warmup:
            phases["upload"].append((start - begin) * 1000.0)
            phases["forward"].append((forward - start) * 1000.0)
            phases["backward"].append((backward - forward) * 1000.0)
            phases["update"].append((update - backward) * 1000.0)
    return phases


def summary(phases):
    steps = [sum(p) for p in zip(*phases.values())]
    medians = {name: statistics.median(times) for name, times in phases.items()}
    return statistics.median(steps), medians, steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda / cuda:N")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    trainable, trainable_phases, trainable_steps = summary(step_times(args, frozen=False))
    frozen, frozen_phases, frozen_steps = summary(step_times(args, frozen=True))
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "trainable_ms": trainable,
                "frozen_ms": frozen,
                "trainable_phases_ms": trainable_phases,
                "frozen_phases_ms": frozen_phases,
                "trainable_steps_ms": trainable_steps,
                "frozen_steps_ms": frozen_steps,
            }
        )
    )


if __name__ == "__main__":
    main()
