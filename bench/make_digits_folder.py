#!/usr/bin/env python3
"""A second real data set for the fine-tuning demo: the 1,797 handwritten
digits (8x8, 17 grey levels) that scikit-learn ships (Debian's
python3-sklearn, sklearn/datasets/data/digits.csv.gz: the UCI optdigits test
set), written as an image folder DIR/{train,test}/<digit>/*.pgm.

  make_digits_folder.py DIR [--train-per-class N]

The first N images of each digit go to train (default 20: a small labelled
set, where a pretrained start matters), all the others to test.
"""
import argparse
import gzip
import os

DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--train-per-class", type=int, default=20)
    a = ap.parse_args()
    rows = [line.split(",") for line in gzip.open(DIGITS, "rt").read().split()]
    seen = {}
    for i, row in enumerate(rows):
        pixels = [min(255, round(float(v) * 255 / 16)) for v in row[:64]]
        label = int(float(row[64]))
        split = "train" if seen.get(label, 0) < a.train_per_class else "test"
        seen[label] = seen.get(label, 0) + 1
        d = os.path.join(a.dir, split, str(label))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:04d}.pgm"), "wb") as f:
            f.write(b"P5\n8 8\n255\n" + bytes(pixels))
    counts = {s: sum(len(os.listdir(os.path.join(a.dir, s, c))) for c in os.listdir(os.path.join(a.dir, s)))
              for s in ("train", "test")}
    print(f"{a.dir}: {counts['train']} training and {counts['test']} test digits")


if __name__ == "__main__":
    main()
