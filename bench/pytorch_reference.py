#!/usr/bin/python3
"""The same VGG in Python eager PyTorch, written the way D2L writes it, timed
the way `vgg bench` times training steps. Uses Debian's python3-torch (the
same LibTorch 1.13 underneath), so the comparison isolates what the C++ code
does differently.

  bench/pytorch_reference.py --width-ratio 4 --image-size 224 --batch-size 128 [--bf16] [--channels-last]
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch, image_size, classes=10):
    blocks, in_channels = [], 1
    for num_convs, out_channels in conv_arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    side = image_size // 2 ** len(conv_arch)
    return nn.Sequential(*blocks, nn.Flatten(),
                         nn.Linear(in_channels * side * side, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, classes))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width-ratio", type=int, default=4)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--mode", choices=["train", "inference"], default="train")
    a = p.parse_args()
    torch.set_num_threads(a.threads or torch.get_num_interop_threads() or 1)
    if a.threads == 0:
        import os
        torch.set_num_threads(os.cpu_count())
    conv_arch = [(1, 64), (1, 128), (2, 256), (2, 512), (2, 512)]
    net = vgg([(n, c // a.width_ratio) for n, c in conv_arch], a.image_size)
    for m in net.modules():  # D2L's init_cnn
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.rand(a.batch_size, 1, a.image_size, a.image_size).to(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch_size,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loss = nn.CrossEntropyLoss()

    def step():
        if a.mode == "train":
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                out = net(x)
            loss(out.float(), y).backward()
            opt.step()
        else:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                net(x)

    if a.mode == "inference":
        net.eval()
    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        rates.append(a.batch_size / (time.perf_counter() - t0))
    print(json.dumps({"mode": a.mode, "bf16": a.bf16, "channels_last": a.channels_last,
                      "threads": torch.get_num_threads(), "images_per_s": rates,
                      "median": statistics.median(rates), "min": min(rates), "max": max(rates)}))


if __name__ == "__main__":
    main()
