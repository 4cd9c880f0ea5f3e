#include "vgg/train/recompute.h"

#include <torch/csrc/autograd/custom_function.h>

#include "vgg/train/precision.h"

namespace vgg {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs beyond tensors, carried through the context.
struct BlockRef : torch::CustomClassHolder {
  BlockRef(torch::nn::Sequential b, std::string p) : block(std::move(b)), precision(std::move(p)) {}
  torch::nn::Sequential block;
  std::string precision;
};

// Snapshots batch-norm running statistics and puts them back on destruction.
class RunningStatsGuard {
 public:
  explicit RunningStatsGuard(torch::nn::Module& block) {
    for (const auto& m : block.modules(/*include_self=*/false)) {
      if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
        for (const auto& buffer : bn->buffers()) saved_.emplace_back(buffer, buffer.clone());
      }
    }
  }
  ~RunningStatsGuard() {
    torch::NoGradGuard no_grad;
    for (auto& [live, copy] : saved_) live.copy_(copy);
  }

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;
};

// Inputs: the block input and the block's parameters (so that the node
// exists, and returns their gradients, even when the input needs none).
struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, torch::TensorList params,
                               const c10::intrusive_ptr<BlockRef>& ref) {
    // Function::apply runs this with autograd off: nothing inside is saved.
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = c10::IValue::make_capsule(ref);
    ctx->saved_data["x_requires_grad"] = x.requires_grad();
    (void)params;
    return ref->block->forward(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto ref = c10::static_intrusive_pointer_cast<BlockRef>(ctx->saved_data["block"].toCapsule());
    const bool x_grad = ctx->saved_data["x_requires_grad"].toBool();
    torch::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(x_grad);
    std::vector<torch::Tensor> params = ref->block->parameters();
    // Restored only after the gradients: batch norm's backward checks that
    // the statistics it saved were not modified in the meantime.
    RunningStatsGuard keep_stats(*ref->block);
    torch::Tensor y;
    {
      torch::AutoGradMode enable_grad(true);
      AutocastGuard autocast(ref->precision, x.device());
      y = ref->block->forward(x);
    }
    variable_list inputs;
    if (x_grad) inputs.push_back(x);
    inputs.insert(inputs.end(), params.begin(), params.end());
    variable_list g = torch::autograd::grad({y}, inputs, {grads[0]});
    y = torch::Tensor();
    variable_list out;
    out.push_back(x_grad ? g[0] : torch::Tensor());
    out.insert(out.end(), g.begin() + (x_grad ? 1 : 0), g.end());
    out.emplace_back();  // the BlockRef
    return out;
  }
};

}  // namespace

torch::Tensor checkpointed_forward(ConvNet& model, const torch::Tensor& x, const std::string& precision) {
  torch::Tensor h = x;
  for (const auto& block : *model->features) {
    torch::nn::Sequential seq(std::dynamic_pointer_cast<torch::nn::SequentialImpl>(block));
    const std::vector<torch::Tensor> params = seq->parameters();
    if (!params.empty() && !params.front().requires_grad()) {
      h = seq->forward(h);  // a frozen block (--freeze) records nothing, so keeps nothing to recompute
      continue;
    }
    h = CheckpointedBlock::apply(h, torch::TensorList(params), c10::make_intrusive<BlockRef>(seq, precision));
  }
  return model->classifier->forward(h);
}

}  // namespace vgg
