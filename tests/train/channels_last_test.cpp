// Channels-last must mean channels-last strides, also with one channel.
#include <gtest/gtest.h>

#include "vgg/models/model.h"
#include "vgg/train/precision.h"

namespace vgg {
namespace {

TEST(ChannelsLast, OneChannelTensorsGetChannelsLastStrides) {
  // An NCHW tensor with one channel already passes is_contiguous(ChannelsLast),
  // so contiguous(ChannelsLast) returns it unchanged, with NCHW strides, and
  // the kernels then take the NCHW path. That is the bug this guards against.
  const torch::Tensor x = torch::rand({4, 1, 8, 8});
  ASSERT_TRUE(x.contiguous(at::MemoryFormat::ChannelsLast).suggest_memory_format() == at::MemoryFormat::Contiguous);
  const torch::Tensor cl = to_channels_last(x);
  EXPECT_TRUE(cl.suggest_memory_format() == at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(torch::equal(cl, x));
  // Already channels-last: no copy.
  EXPECT_EQ(to_channels_last(cl).data_ptr(), cl.data_ptr());
  // Not 4-D: unchanged.
  const torch::Tensor v = torch::rand({5});
  EXPECT_EQ(to_channels_last(v).data_ptr(), v.data_ptr());
}

TEST(ChannelsLast, FirstBlockRunsChannelsLastOnOneChannelInput) {
  ConvNet net = build_model(ModelOptions("1x8,1x16").image_size(16).fc_width(16));
  to_channels_last(*net);
  for (const auto& p : net->parameters()) {
    if (p.dim() == 4) EXPECT_TRUE(p.suggest_memory_format() == at::MemoryFormat::ChannelsLast) << p.sizes();
  }
  // The first conv's output (and so its ReLU and pool) is channels-last.
  const torch::Tensor x = to_channels_last(torch::rand({2, 1, 16, 16}));
  const torch::Tensor y = net->features[0]->as<torch::nn::Sequential>()->forward(x);
  EXPECT_TRUE(y.suggest_memory_format() == at::MemoryFormat::ChannelsLast);
}

}  // namespace
}  // namespace vgg
