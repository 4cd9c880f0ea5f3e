#!/usr/bin/env bash
# Weights out, checked against Debian's Python stack at full size: for each
# architecture, a checkpoint (one epoch of 8 real Fashion-MNIST images at
# 224x224, 1 channel, 10 classes, lr 0.01; batch norm only where the name
# says so) is exported as a PyTorch state_dict and as
# ONNX; torchvision's own model (models.NAME(num_classes=10), first conv
# replaced for 1-channel input) loads the state_dict with strict=True, and
# torchvision, OpenCV's dnn (running the ONNX file) and `vgg predict --json`
# classify the same 64 real test images. Prints the largest logit
# difference and whether every predicted class agrees.
#
#   bench/weights_check.sh [BUILD_DIR] [ARCH ...]     (default: vgg11 vgg16_bn)
# Needs python3-torch, python3-torchvision, python3-onnx, python3-opencv.
set -euo pipefail
build=${1:-build}
shift || true
archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(vgg11 vgg16_bn)
vgg="$(cd "$build" && pwd)/vgg"
py=${VGG_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=/usr/share/datasets/fashion-mnist

# 64 real test images as PGM files.
"$py" - "$data" "$work/img" <<'PY'
import gzip, os, sys
raw = gzip.open(sys.argv[1] + "/t10k-images-idx3-ubyte.gz").read()[16:]
os.makedirs(sys.argv[2])
for i in range(64):
    with open(f"{sys.argv[2]}/test{i:02d}.pgm", "wb") as f:
        f.write(b"P5\n28 28\n255\n" + raw[i * 784:(i + 1) * 784])
PY

for arch in "${archs[@]}"; do
  d="$work/$arch"
  mkdir -p "$d"
  "$vgg" train --arch "$arch" --no-batch-norm --image-size 224 --fc-width 4096 --dropout 0.5 --limit-train 8 --limit-test 8 --lr 0.01 \
    --batch-size 8 --epochs 1 --no-progress --save "$d/model.ckpt" >/dev/null
  "$vgg" predict --json --checkpoint "$d/model.ckpt" --save-inputs "$d/inputs.pt" "$work"/img/*.pgm >"$d/predict.json"
  "$vgg" export --checkpoint "$d/model.ckpt" -o "$d/model.pt" >/dev/null
  "$vgg" export --checkpoint "$d/model.ckpt" -o "$d/model.onnx" >/dev/null
  "$py" - "$d" "$arch" <<'PY'
import json, os, sys
import cv2, onnx, torch, torchvision
from torch import nn
d, arch = sys.argv[1], sys.argv[2]
net = getattr(torchvision.models, arch)(num_classes=10)
net.features[0] = nn.Conv2d(1, 64, kernel_size=3, padding=1)
net.load_state_dict(torch.load(d + "/model.pt"), strict=True)
net.eval()
ours = torch.tensor([p["logits"] for p in json.load(open(d + "/predict.json"))])
x = torch.load(d + "/inputs.pt")["inputs"]
with torch.no_grad():
    tv = net(x)
onnx.checker.check_model(d + "/model.onnx")
cvnet = cv2.dnn.readNetFromONNX(d + "/model.onnx")
cvnet.setInput(x.numpy())
cv = torch.from_numpy(cvnet.forward())
mb = lambda p: os.path.getsize(p) / 2**20
print(f"{arch}: {x.shape[0]} real test images {list(x.shape[1:])}; state_dict {mb(d + '/model.pt'):.0f} MiB loads "
      f"strict into torchvision.models.{arch}(num_classes=10); max |torchvision - vgg| {float((tv - ours).abs().max()):.2e}, "
      f"same class {int((tv.argmax(1) == ours.argmax(1)).sum())}/{x.shape[0]}; ONNX {mb(d + '/model.onnx'):.0f} MiB passes "
      f"onnx.checker; max |OpenCV dnn - vgg| {float((cv - ours).abs().max()):.2e}, same class "
      f"{int((cv.argmax(1) == ours.argmax(1)).sum())}/{x.shape[0]}; logit scale {float(ours.abs().max()):.3g}")
PY
  rm -rf "$d"
done

# Weights in: torchvision's vgg16 with random weights, saved in the legacy
# (pre-1.6) format its downloadable vgg16-397923af.pth uses, imported by
# `vgg import` (architecture recognised from the shapes, ImageNet
# preprocessing), then the same 64 pictures through both.
d="$work/import"
mkdir -p "$d"
"$py" - "$d" <<'PY'
import sys, torch, torchvision
torch.manual_seed(0)
net = torchvision.models.vgg16()
torch.save(net.state_dict(), sys.argv[1] + "/vgg16-random.pth", _use_new_zipfile_serialization=False)
PY
"$vgg" import "$d/vgg16-random.pth" -o "$d/vgg16.ckpt" | sed 's/^/  /'
"$vgg" predict --json --checkpoint "$d/vgg16.ckpt" --save-inputs "$d/inputs.pt" "$work"/img/*.pgm >"$d/predict.json"
"$py" - "$d" <<'PY'
import json, os, sys, torch, torchvision
d = sys.argv[1]
net = torchvision.models.vgg16()
net.load_state_dict(torch.load(d + "/vgg16-random.pth"))
net.eval()
ours = torch.tensor([p["logits"] for p in json.load(open(d + "/predict.json"))])
x = torch.load(d + "/inputs.pt")["inputs"]
with torch.no_grad():
    tv = net(x)
print(f"vgg16 import: legacy-format state_dict ({os.path.getsize(d + '/vgg16-random.pth') / 2**20:.0f} MiB) -> vgg "
      f"checkpoint; {x.shape[0]} pictures {list(x.shape[1:])}: max |torchvision - vgg| {float((tv - ours).abs().max()):.2e}, "
      f"same class {int((tv.argmax(1) == ours.argmax(1)).sum())}/{x.shape[0]}; logit scale {float(ours.abs().max()):.3g}")
PY
