"""The model zoo's references, from torchvision and timm themselves.

  zoo.py counts OUT.json NAME...          parameter counts (1000 classes, 3 channels)
  zoo.py write OUT_DIR NAME CLASSES SIZE FILE
                                          a random model with norm layers away from their
                                          defaults as OUT_DIR/FILE (model.pth or
                                          model.safetensors), and io.safetensors with an input
                                          batch x and its eval logits y
  zoo.py check EXPORT NAME CLASSES IO     loads a thaw export with strict=True and prints the
                                          largest difference from IO's logits, as JSON
  zoo.py resample IN OUT SIDE...          timm's resample_abs_pos_embed of IN's tensor `pos`
                                          (one class token) to each SIDE x SIDE grid, as OUT's
                                          tensors `SIDE`

NAME is a torchvision model name (resnet50) or timm:NAME (timm:vit_small_patch16_224)."""
import json
import os
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file


def build(name, classes, size=None, device=None):
    kwargs = {"num_classes": classes}
    if name.startswith("timm:"):
        import timm

        if size is not None and "vit" in name:
            kwargs["img_size"] = size
        with torch.device(device or "cpu"):
            return timm.create_model(name[len("timm:"):], pretrained=False, **kwargs)
    if size is not None and name.startswith("vit_"):
        kwargs["image_size"] = size
    with torch.device(device or "cpu"):
        return torchvision.models.get_model(name, **kwargs)


def perturb(model):
    """Norm layers and layer scales away from their defaults, so a swapped or dropped one shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)):
                if module.weight is not None:
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
        for name, param in model.named_parameters():
            if name.rsplit(".", 1)[-1] in ("layer_scale", "gamma"):
                param.uniform_(0.5, 1.5)
            elif param.numel() > 1 and bool((param == 0).all()):
                # Zero-initialised heads, class tokens: a value that cannot be told from
                # one never loaded.
                param.normal_(0.0, 0.02)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "counts":
        out, names = args[0], args[1:]
        counts = {}
        for name in names:
            model = build(name, 1000, device="meta")
            counts[name] = sum(p.numel() for p in model.parameters())
        with open(out, "w") as f:
            json.dump(counts, f)
    elif command == "write":
        out, name, classes, size, file = args[0], args[1], int(args[2]), int(args[3]), args[4]
        torch.manual_seed(0)
        model = build(name, classes, size)
        perturb(model)
        model.eval()
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        if file.endswith(".safetensors"):
            save_file(state, os.path.join(out, file))
        else:
            torch.save(state, os.path.join(out, file))
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            y = model(x)
        save_file({"x": x.contiguous(), "y": y.contiguous()}, os.path.join(out, "io.safetensors"))
    elif command == "check":
        export, name, classes, io = args[0], args[1], int(args[2]), load_file(args[3])
        model = build(name, classes, io["x"].shape[-1])
        model.load_state_dict(load_file(export), strict=True)
        model.eval()
        with torch.no_grad():
            y = model(io["x"])
        print(json.dumps({"max_diff": float((y - io["y"]).abs().max())}))
    elif command == "resample":
        from timm.layers import resample_abs_pos_embed

        pos = load_file(args[0])["pos"]
        out = {side: resample_abs_pos_embed(pos, [int(side), int(side)], num_prefix_tokens=1) for side in args[2:]}
        save_file({k: v.contiguous() for k, v in out.items()}, args[1])
    else:
        sys.exit(f"unknown command {command}: expected counts, write, check or resample")


main()
