#include "vgg/train/predict.h"

#include <fmt/format.h>

#include "vgg/data/batch.h"
#include "vgg/data/folder.h"

namespace vgg {

int64_t data_image_size(const CheckpointMeta& meta) { return meta.data_image_size; }

LoadOptions load_options(const CheckpointMeta& meta) {
  return LoadOptions()
      .channels(meta.model.in_channels())
      .num_classes(meta.model.num_classes())
      .image_size(meta.model.image_size());
}

torch::Tensor prepare_image(const Image& image, const CheckpointMeta& meta, bool invert) {
  torch::Tensor x = image_to_tensor(image, meta.model.in_channels());  // uint8 [C, H, W]
  if (invert) x = 255 - x;
  if (meta.preprocess.center_crop()) {
    return preprocess(fit_square(x, photo_side(meta.model.image_size())).unsqueeze(0), meta.preprocess).squeeze(0);
  }
  const int64_t h = x.size(1), w = x.size(2), side = std::max(h, w);
  if (h != w) {
    x = torch::constant_pad_nd(x, {(side - w) / 2, side - w - (side - w) / 2, (side - h) / 2, side - h - (side - h) / 2}, 0);
  }
  x = x.unsqueeze(0);
  const int64_t native = data_image_size(meta);
  if (native > 0 && native != side) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x.to(torch::kFloat32), F::InterpolateFuncOptions()
                                                  .size(std::vector<int64_t>{native, native})
                                                  .mode(torch::kBilinear)
                                                  .align_corners(false)
                                                  .antialias(native < side))
            .round()
            .clamp(0, 255)
            .to(torch::kUInt8);
  }
  return preprocess(x, meta.preprocess).squeeze(0);
}

torch::Tensor predict_logits(ConvNet& model, const torch::Tensor& batch) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  torch::Tensor logits = model->forward(batch).to(torch::kFloat32);
  model->train(was_training);
  return logits;
}

std::vector<std::vector<ClassProbability>> predict_top_k(ConvNet& model, const torch::Tensor& batch,
                                                         const std::vector<std::string>& names, int64_t k) {
  return top_k_classes(predict_logits(model, batch), names, k);
}

std::vector<std::vector<ClassProbability>> top_k_classes(const torch::Tensor& logits,
                                                         const std::vector<std::string>& names, int64_t k) {
  const torch::Tensor probs = torch::softmax(logits, 1);
  const torch::Tensor& batch = logits;
  k = std::min(k, probs.size(1));
  auto [values, indices] = probs.topk(k, 1);
  std::vector<std::vector<ClassProbability>> out(static_cast<size_t>(batch.size(0)));
  for (int64_t i = 0; i < batch.size(0); ++i) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = indices[i][j].item<int64_t>();
      out[i].push_back({c, c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c),
                        values[i][j].item<double>()});
    }
  }
  return out;
}

}  // namespace vgg
