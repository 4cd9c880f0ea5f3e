#!/usr/bin/env python3
"""Writes the generated seeds of fuzz/corpus/checkpoint (Python stdlib only).

    python3 fuzz/make_checkpoint_seeds.py [OUTPUT_DIR]

Each seed is a checkpoint that loads, in the harness's input format: a first
byte 0x01 and the payload (the harness adds the header), or 0x00 and the
whole file. The metadata has every key the current format writes (model,
preprocess, train with the memory-planner and TTA options, running sums, the
data record, data_image_size), so the structure-aware mutator starts from
every field. Rerun after a format change and check with

    FUZZ_CHECKPOINT_VERBOSE=1 build-sanitize/fuzz_checkpoint fuzz/corpus/checkpoint/gen_*

that each one prints "loaded". Tensor records hold the parameters of the
small conv nets named below (shapes as vgg::ConvNet names them); their
values are arbitrary.
"""
import json
import os
import struct
import sys
import zlib

MAGIC = b"VGGCKPT\n"
VERSION = 2
FLOAT, BF16, LONG, BYTE, DOUBLE = 0, 1, 2, 3, 4
ELEMENT = {FLOAT: 4, BF16: 2, LONG: 8, BYTE: 1, DOUBLE: 8}
RNG_STATE_BYTES = 5056  # at::CPUGeneratorImpl state in LibTorch 1.13

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def record(name, dtype, dims, fill=0):
    n = 1
    for d in dims:
        n *= d
    out = struct.pack("<I", len(name)) + name.encode() + bytes([dtype]) + struct.pack("<I", len(dims))
    out += b"".join(struct.pack("<q", d) for d in dims)
    if dtype == FLOAT:
        out += b"".join(struct.pack("<f", ((i * 7 + fill) % 13 - 6) / 32.0) for i in range(n))
    elif dtype == LONG:
        out += b"".join(struct.pack("<q", fill) for _ in range(n))
    else:
        out += bytes(((i * 31 + fill) & 0xFF) for i in range(n * ELEMENT[dtype]))
    return out


def vgg_like_records(conv_arch, in_channels, image_size, fc_width, classes, batch_norm, momentum):
    """Parameters and buffers of a conv_arch net ("1x4", "1x2,1x2"), in ConvNet's names."""
    params, buffers = [], []
    c, side = in_channels, image_size
    for b, block in enumerate(conv_arch.split(",")):
        convs, width = map(int, block.split("x"))
        for i in range(1, convs + 1):
            prefix = "features.%d." % b
            params.append((prefix + "conv%d_%d.weight" % (b + 1, i), [width, c, 3, 3]))
            params.append((prefix + "conv%d_%d.bias" % (b + 1, i), [width]))
            if batch_norm:
                params.append((prefix + "bn%d_%d.weight" % (b + 1, i), [width]))
                params.append((prefix + "bn%d_%d.bias" % (b + 1, i), [width]))
                buffers.append((prefix + "bn%d_%d.running_mean" % (b + 1, i), [width], FLOAT))
                buffers.append((prefix + "bn%d_%d.running_var" % (b + 1, i), [width], FLOAT))
                buffers.append((prefix + "bn%d_%d.num_batches_tracked" % (b + 1, i), [], LONG))
            c = width
        side //= 2
    flat = c * side * side
    for name, shape in [("fc1", [fc_width, flat]), ("fc2", [fc_width, fc_width]), ("fc3", [classes, fc_width])]:
        params.append(("classifier.%s.weight" % name, shape))
        params.append(("classifier.%s.bias" % name, shape[:1]))
    out = [record("model/" + n, FLOAT, s, k) for k, (n, s) in enumerate(params)]
    out += [record("model/" + n, t, s, 1 if t == LONG else k) for k, (n, s, t) in enumerate(buffers)]
    if momentum:
        out += [record("optimizer/momentum/%d" % i, FLOAT, s, i + 3) for i, (_, s) in enumerate(params)]
    return out


def meta(arch, in_channels, image_size, fc_width, classes, batch_norm, class_names, **over):
    m = {
        "format_version": VERSION,
        "model": {"arch": arch, "in_channels": in_channels, "num_classes": classes, "image_size": image_size,
                  "width_ratio": 1, "fc_width": fc_width, "dropout": 0.3, "batch_norm": batch_norm, "init": "kaiming"},
        "preprocess": {"image_size": image_size, "normalize": True, "mean": 0.286, "std": 0.353, "crop_padding": 2,
                       "hflip": True, "random_erasing": 0.25},
        "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 256, "lr": 0.1, "momentum": 0.9,
                  "nesterov": True, "weight_decay": 0.0005, "schedule": "onecycle", "step_epochs": 3, "gamma": 0.1,
                  "label_smoothing": 0.1, "seed": 42, "precision": "bf16", "channels_last": True, "micro_batch": 8,
                  "recompute": True, "memory_budget": 1 << 30, "flip_tta": True, "shift_tta": 2},
        "epochs_done": 1,
        "step_in_epoch": 0,
        "running": {"loss_sum": 0.0, "correct": 0, "seen": 0},
        "class_names": class_names,
        "data_image_size": 28,
        "data": {"dir": "/usr/share/datasets/fashion-mnist", "limit_train": 0, "limit_test": 0,
                 "train_count": 60000, "train_crc": 3735928559},
    }
    for path, value in over.items():
        node = m
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return m


def payload(m, records):
    text = json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + struct.pack("<I", len(records)) + b"".join(records)


def as_file(p):
    return MAGIC + struct.pack("<IQI", VERSION, len(p), zlib.crc32(p) & 0xFFFFFFFF) + p


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "checkpoint")
    tiny = dict(arch="1x4", in_channels=1, image_size=8, fc_width=8, classes=10, batch_norm=True,
                class_names=FASHION)
    full = payload(meta(**tiny), vgg_like_records("1x4", 1, 8, 8, 10, True, momentum=True))
    mid = payload(meta(**tiny, epochs_done=0, step_in_epoch=2, running={"loss_sum": 4.5, "correct": 7, "seen": 32}),
                  vgg_like_records("1x4", 1, 8, 8, 10, True, momentum=True)
                  + [record("rng/augment", BYTE, [RNG_STATE_BYTES], 1), record("rng/global", BYTE, [RNG_STATE_BYTES], 2)])
    # Two blocks, no batch norm, RGB, two classes, xavier, fp32, cosine, an old
    # checkpoint's layout (data_image_size under "extra", no data record).
    small_meta = meta("1x2,1x2", 3, 8, 4, 2, False, ["cat", "dog"], model__init="xavier", train__precision="fp32",
                      train__schedule="cosine", train__nesterov=False, train__momentum=0.0, train__epochs=5)
    del small_meta["data"], small_meta["running"], small_meta["data_image_size"]
    small_meta["extra"] = {"data_image_size": 32}
    small = payload(small_meta, vgg_like_records("1x2,1x2", 3, 8, 4, 2, False, momentum=False))
    seeds = {
        "gen_payload_full": b"\x01" + full,
        "gen_payload_midepoch": b"\x01" + mid,
        "gen_payload_small_nobn": b"\x01" + small,
        "gen_raw_full": b"\x00" + as_file(full),
    }
    for name, data in seeds.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
