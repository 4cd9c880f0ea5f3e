#!/usr/bin/python3
# Writes the seed corpus of fuzz_torch_file (fuzz/corpus/torch_file): tiny
# files of every shape torch.save gives a state_dict, zip and legacy, with
# Debian's python3-torch (/usr/bin/python3; a pyenv python3 lacks torch).
#   /usr/bin/python3 fuzz/make_torch_file_seeds.py fuzz/corpus/torch_file
import collections
import os
import sys
import zipfile

import torch

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "torch_file")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

base = torch.arange(6, dtype=torch.float32)
sd = collections.OrderedDict()
sd["conv.weight"] = torch.randn(2, 1, 1, 1)
sd["bn.num_batches_tracked"] = torch.tensor(1)
sd["view"] = base[1:4]
sd["view.t"] = base.view(2, 3).t()
sd._metadata = collections.OrderedDict({"": {"version": 1}, "bn": {"version": 2}})

dtypes = collections.OrderedDict(
    (str(t).replace("torch.", ""), torch.ones(2, dtype=t))
    for t in (torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool))

seeds = {
    "zip": (sd, {}),
    "zip_proto4": (sd, {"pickle_protocol": 4}),
    "legacy": (sd, {"_use_new_zipfile_serialization": False}),
    "legacy_proto5": (sd, {"_use_new_zipfile_serialization": False, "pickle_protocol": 5}),
    "dtypes_zip": (dtypes, {}),
    "dtypes_legacy": (dtypes, {"_use_new_zipfile_serialization": False}),
    "checkpoint": ({"epoch": 3, "state_dict": sd, "lr": 0.1, "tags": ["a", None, True]}, {}),
    "checkpoint_legacy": ({"model": dict(sd)}, {"_use_new_zipfile_serialization": False}),
    "expand": ({"e": torch.arange(3.0).expand(2, 3), "empty": torch.zeros(0, 2)}, {}),
}
# For the harness's wrapping mode ('W' + data.pkl): storages 0..3 of 4, 8, 24 and 64 bytes.
wrapped = collections.OrderedDict()
wrapped["a"] = torch.ones(1)
wrapped["n"] = torch.tensor(1)
wrapped["w"] = torch.ones(2, 3)
wrapped["m"] = torch.zeros(64, dtype=torch.bool)[::2]
wrapped._metadata = collections.OrderedDict({"": {"version": 1}})
seeds["wrapped_pkl"] = (wrapped, {})

for name, (obj, kwargs) in seeds.items():
    path = os.path.join(out, name + ".pt")
    torch.save(obj, path, **kwargs)
    assert os.path.getsize(path) < 20000, path
    if name == "wrapped_pkl":
        with zipfile.ZipFile(path) as z:
            pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
        with open(path, "wb") as f:
            f.write(b"W" + pkl)
    print(path, os.path.getsize(path))
