// PyTorch's own file format: the state_dict files Python's torch.save
// writes and torch.load reads, so that weights move between this program
// and Python (torchvision's pretrained VGG weights, a model trained in
// Python, or ours evaluated there).
//
// The files are untrusted input: a pickle can name any Python callable, so
// the reader is a restricted unpickler that knows only the handful of
// globals a state_dict needs and refuses every other one by name, and every
// size, offset and count in the file is checked against the bytes that are
// really there before anything is allocated.
#pragma once

#include <ATen/core/Tensor.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace vgg {

// A file could not be read or written as a state_dict. The message is one
// line starting with the file's name (the `what` of the bytes functions).
struct TorchFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};
// In file order: PyTorch's state_dicts are ordered (parameters in module
// order), and writers and readers of the same model rely on it.
using StateDict = std::vector<NamedTensor>;

// Reads a state_dict saved by Python's torch.save: the zip format (torch >=
// 1.6) and the legacy non-zip format (torch < 1.6 and
// _use_new_zipfile_serialization=False; torchvision's vgg16-397923af.pth is
// one). Accepts a dict or collections.OrderedDict (with its _metadata
// attribute, which is ignored) of str -> tensor; also a training checkpoint
// dict whose "state_dict" or "model" entry is such a dict (then that entry is
// returned; other entries ignored). The tensors own their memory (they never
// alias the file's bytes or each other), are contiguous, on the CPU, and keep
// the stored dtype: float32, float64, float16, bfloat16, int64, int32, int16,
// int8, uint8 or bool. Files up to 16 GiB.
StateDict read_torch_state_dict(const std::string& path);
// The same from the file's bytes; `what` names them in errors.
StateDict read_torch_state_dict_bytes(const std::string& bytes, const std::string& what);

// Writes the zip format Python's torch.load reads, as a plain dict in the
// given order. Names must be non-empty, without NUL characters, and unique;
// tensors of the dtypes above, on any device (they are saved from the CPU).
void write_torch_state_dict(const std::string& path, const StateDict& sd);
std::string torch_state_dict_bytes(const StateDict& sd);

}  // namespace vgg
