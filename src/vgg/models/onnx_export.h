// Export of a trained network to ONNX, for runtimes other than LibTorch
// (OpenCV's dnn module, ONNX Runtime, TensorRT).
//
// The graph is written from the layer table, walked side by side with the
// modules that hold the weights, so it contains exactly the layers the table
// plans and nothing PyTorch's tracer would add. The model is an ordinary
// ONNX ModelProto (opset 13, IR version 7) built with ONNX's own protobuf
// classes and checked with onnx::checker before it is returned:
//
//   input  `input_name`  float32 [N, C, S, S], N symbolic ("N")
//   output `output_name` float32 [N, classes], the logits (no softmax)
//
// What the graph computes is the model's eval-mode forward pass:
//   Conv (+ BatchNorm) -> Conv, batch norm folded in (below)
//   ReLU -> Relu, Sigmoid -> Sigmoid
//   MaxPool -> MaxPool, AvgPool -> AveragePool (count_include_pad=1, as
//     PyTorch's default)
//   AdaptiveAvgPool -> nothing when its input already has the output size;
//     AveragePool (kernel = stride = in/out) when the input is a multiple of
//     the output; otherwise Reshape [N, C, in.h*in.w], MatMul by a constant
//     averaging matrix, Reshape [N, C, out.h, out.w], which reproduces
//     PyTorch's overlapping or replicating bins exactly (torchvision's 7x7
//     head on a 1x1 or 2x2 feature map)
//   Flatten -> Flatten(axis=1), Linear -> Gemm(transB=1)
//   Dropout -> nothing (the identity in eval mode)
//
// Batch norm is folded into the convolution before it (W' = W*g/sqrt(v+eps),
// b' = (b-m)*g/sqrt(v+eps) + beta, computed in double from the running
// statistics): OpenCV and every optimising runtime fold it on import anyway,
// and folding keeps the graph minimal and its weights what actually runs.
//
// Initializers are named after the parameters they come from
// ("features.0.conv1_1.weight", "classifier.fc1.bias"; after folding the
// conv's names carry the folded values), nodes after the table rows
// ("conv1_1", "relu1_1", "pool1", "fc1").
#pragma once

#include <torch/arg.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vgg/models/model.h"

namespace vgg {

// The model cannot be exported as asked (an option, a module that does not
// match its layer table, a model past protobuf's 2 GiB limit); one line.
struct OnnxExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Key/value pairs for ModelProto.metadata_props.
using OnnxMetadata = std::vector<std::pair<std::string, std::string>>;

struct OnnxExportOptions {
  TORCH_ARG(std::string, input_name) = "input";
  TORCH_ARG(std::string, output_name) = "logits";
  // Written to the model's metadata_props as given, in order (class names,
  // mean/std, input size, ...: the caller composes them). Keys must be
  // distinct, as ONNX requires.
  TORCH_ARG(OnnxMetadata, metadata) = {};
  TORCH_ARG(std::string, graph_name) = "vgg";
};

// The model as a serialized ONNX ModelProto. Reads the parameters and
// batch-norm running statistics as eval mode uses them, whatever mode the
// model is in, and changes nothing (not even its mode). Parameters may live
// on any device; they are copied to the CPU. Throws OnnxExportError.
std::string onnx_model_bytes(ConvNet& model, const OnnxExportOptions& o = {});

// Writes onnx_model_bytes(model, o) to `path` (vgg::write_file: FileError
// when it cannot be written).
void export_onnx(ConvNet& model, const std::string& path, const OnnxExportOptions& o = {});

}  // namespace vgg
