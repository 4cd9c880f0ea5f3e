// libFuzzer harness: the torch.save reader (vgg/models/torch_file.h) must
// refuse any malformed file with a TorchFileError, never crash, hang,
// over-allocate or throw anything else. Whatever it reads must keep its
// promises: non-empty names without NUL, defined contiguous CPU tensors that
// own their memory, of one of the ten dtypes. Whatever reads then goes
// through the import path (recognise_weights, import_state_dict), which may
// only refuse it with a WeightsError or UsageError.
//
// A zip's records carry CRC-32s, so mutations of a zip file's pickle are
// nearly all refused before the unpickler sees them. An input starting with
// 'W' is therefore wrapped: the rest becomes archive/data.pkl of a valid zip
// (written by LibTorch's PyTorchStreamWriter) that also holds the storage
// records data/0 .. data/3 of 4, 8, 24 and 64 bytes.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "vgg/error.h"
#include "vgg/models/torch_file.h"
#include "vgg/models/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size > 0 && data[0] == 'W') {
    std::string zip;
    {
      caffe2::serialize::PyTorchStreamWriter writer([&zip](const void* p, size_t n) {
        zip.append(static_cast<const char*>(p), n);
        return n;
      });
      writer.writeRecord("data.pkl", data + 1, size - 1);
      const size_t record_sizes[] = {4, 8, 24, 64};
      for (size_t i = 0; i < 4; ++i) {
        std::string record(record_sizes[i], '\0');
        for (size_t j = 0; j < record.size(); ++j) record[j] = static_cast<char>(j % 2);  // valid bools too
        writer.writeRecord("data/" + std::to_string(i), record.data(), record.size());
      }
      writer.writeEndOfFile();
    }
    bytes = std::move(zip);
  }
  vgg::StateDict sd;
  try {
    sd = vgg::read_torch_state_dict_bytes(bytes, "fuzz");
  } catch (const vgg::TorchFileError&) {
    return 0;
  }
  for (const vgg::NamedTensor& nt : sd) {
    if (nt.name.empty() || nt.name.find('\0') != std::string::npos) __builtin_trap();
    const at::Tensor& t = nt.tensor;
    if (!t.defined() || !t.is_contiguous() || !t.device().is_cpu() || t.dim() > 16) __builtin_trap();
    if (t.storage_offset() != 0 || t.storage().nbytes() != t.nbytes()) __builtin_trap();
    switch (t.scalar_type()) {
      case at::kFloat: case at::kDouble: case at::kHalf: case at::kBFloat16: case at::kLong:
      case at::kInt: case at::kShort: case at::kChar: case at::kByte:
        break;
      case at::kBool: {
        // Only 0 and 1 may sit in a bool tensor.
        const auto* p = static_cast<const unsigned char*>(t.data_ptr());
        for (int64_t i = 0; i < t.numel(); ++i) {
          if (p[i] > 1) __builtin_trap();
        }
        break;
      }
      default:
        __builtin_trap();
    }
    // The data must not alias the input.
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    if (t.nbytes() > 0 && p < data + size && p + t.nbytes() > data) __builtin_trap();
  }
  // The import path: recognising the network and, when it is small, loading
  // the tensors into it. Only WeightsError (and UsageError for a shape no
  // network has) may come out.
  try {
    const vgg::RecognisedWeights r = vgg::recognise_weights(sd, 32, "fuzz");
    if (vgg::total_params(vgg::plan_layers(r.model)) < (1 << 20)) {
      vgg::ConvNet model = vgg::build_model(r.model);
      vgg::import_state_dict(model, sd, "fuzz");
    }
  } catch (const vgg::WeightsError&) {
  } catch (const vgg::UsageError&) {
  }
  // What was read writes back and reads back the same.
  size_t total = 0;
  for (const vgg::NamedTensor& nt : sd) total += nt.tensor.nbytes();
  if (!sd.empty() && sd.size() < 64 && total < (1u << 20)) {
    const vgg::StateDict back = vgg::read_torch_state_dict_bytes(vgg::torch_state_dict_bytes(sd), "fuzz round trip");
    if (back.size() != sd.size()) __builtin_trap();
    for (size_t i = 0; i < sd.size(); ++i) {
      const at::Tensor &a = sd[i].tensor, &b = back[i].tensor;
      if (back[i].name != sd[i].name || a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes() ||
          (a.nbytes() > 0 && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) != 0)) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
