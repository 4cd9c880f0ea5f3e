#include "vgg/dist/dist.h"

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef VGG_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>

#include "vgg/data/batch.h"
#include "vgg/error.h"
#include "vgg/models/model.h"

namespace vgg {
namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x < lo || x > hi) {
    throw UsageError(fmt::format("{}: expected an integer in {}..{}, found '{}'", name, lo, hi, v));
  }
  return static_cast<int>(x);
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0; }

}  // namespace

std::optional<DistOptions> dist_from_env() {
  if (std::getenv("WORLD_SIZE") == nullptr) return std::nullopt;
  DistOptions o;
  o.world_size = env_int("WORLD_SIZE", 1, 1, 65536);
  o.rank = env_int("RANK", 0, 0, o.world_size - 1);
  o.local_rank = env_int("LOCAL_RANK", o.rank, 0, 65535);
  if (const char* a = std::getenv("MASTER_ADDR")) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  return o;
}

torch::Tensor shard_indices(int64_t n, int world_size, int rank, bool shuffle, uint64_t seed, int64_t epoch,
                            bool pad) {
  torch::Tensor order = epoch_order(n, shuffle, seed, epoch);
  if (pad && n % world_size != 0) {
    const int64_t total = (n + world_size - 1) / world_size * world_size;
    order = torch::cat({order, order.narrow(0, 0, total - n)});
  }
  return order.slice(0, rank, order.size(0), world_size).contiguous();
}

ProcessGroup::ProcessGroup(const DistOptions& o) : options_(o) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(o.master_port);
  store_options.isServer = o.rank == 0;
  store_options.numWorkers = o.world_size;
  store_options.waitWorkers = true;
  store_options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw std::runtime_error(fmt::format("rank {}: cannot reach the rendezvous at {}:{} within {}s: {}", o.rank,
                                         o.master_addr, o.master_port, o.timeout.count(),
                                         what.substr(0, what.find('\n'))));
  }
  if (o.backend == "gloo") {
    auto gloo = c10d::ProcessGroupGloo::Options::create(std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout));
    // On loopback bind to 127.0.0.1: the host name may resolve to an address
    // that is not reachable in containers.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (is_loopback(o.master_addr)) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    group_ = std::make_shared<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, gloo);
  } else if (o.backend == "nccl") {
#ifdef VGG_WITH_NCCL
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    group_ = std::make_shared<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, nccl);
#else
    throw UsageError("--dist-backend: nccl needs a LibTorch built with CUDA and NCCL; this one has neither");
#endif
  } else {
    throw UsageError(fmt::format("--dist-backend: expected gloo or nccl, found '{}'", o.backend));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  c10d::BroadcastOptions opts;
  opts.rootRank = root;
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one = {t};
    group_->broadcast(one, opts)->wait();
  }
}

void ProcessGroup::allreduce_sum(torch::Tensor& t) {
  std::vector<torch::Tensor> one = {t};
  group_->allreduce(one)->wait();
}

void ProcessGroup::barrier() { group_->barrier()->wait(); }

struct GradientSync::Bucket {
  torch::Tensor flat;
  std::vector<size_t> params;
  size_t pending = 0;
  c10::intrusive_ptr<c10d::Work> work;
};

GradientSync::GradientSync(ProcessGroup& group, torch::nn::Module& module, int64_t bucket_bytes)
    : group_(group), module_(module), params_(trainable_parameters(module)) {
  slot_.resize(params_.size());
  // Gradients arrive roughly in reverse order of the parameters, so buckets
  // are filled from the last parameter backwards.
  Bucket* current = nullptr;
  int64_t used = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (current == nullptr || used + bytes > bucket_bytes) {
      buckets_.push_back(std::make_unique<Bucket>());
      current = buckets_.back().get();
      used = 0;
    }
    slot_[k] = {buckets_.size() - 1, used / static_cast<int64_t>(p.element_size())};
    current->params.push_back(k);
    used += bytes;
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b->params) n += params_[k].numel();
    b->flat = torch::zeros({n}, params_[b->params.front()].options());
  }
  seen_.assign(params_.size(), false);
  for (size_t k = 0; k < params_.size(); ++k) {
    hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& grad) { on_grad(k, grad); }));
  }
}

GradientSync::~GradientSync() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradientSync::broadcast_state() {
  std::vector<torch::Tensor> state;
  for (auto& p : module_.parameters()) state.push_back(p.data());
  for (auto& b : module_.buffers()) state.push_back(b);
  broadcast_tensors(state);
}

void GradientSync::broadcast_buffers() {
  std::vector<torch::Tensor> state = module_.buffers();
  broadcast_tensors(state);
}

void GradientSync::broadcast_tensors(std::vector<torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  // Broadcast needs dense tensors; channels-last ones are copied through.
  for (auto& t : state) {
    if (t.is_contiguous()) {
      std::vector<torch::Tensor> one = {t};
      group_.broadcast(one);
    } else {
      std::vector<torch::Tensor> one = {t.contiguous()};
      group_.broadcast(one);
      t.copy_(one[0]);
    }
  }
}

void GradientSync::prepare() {
  armed_ = true;
  seen_.assign(params_.size(), false);
  for (auto& b : buckets_) {
    b->pending = b->params.size();
    b->work.reset();
  }
}

void GradientSync::on_grad(size_t k, const torch::Tensor& grad) {
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  auto [bi, offset] = slot_[k];
  Bucket& b = *buckets_[bi];
  const auto& p = params_[k];
  torch::Tensor slice = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
  seen_[k] = true;
  // The hook runs before accumulation: add what earlier micro-batches left.
  if (p.grad().defined()) {
    torch::add_out(slice, p.grad(), grad);
  } else {
    slice.copy_(grad);
  }
  if (--b.pending == 0) launch(b);
}

void GradientSync::launch(Bucket& b) {
  b.flat.div_(group_.world_size());
  std::vector<torch::Tensor> one = {b.flat};
  b.work = group_.group().allreduce(one);
}

void GradientSync::finish() {
  if (!armed_) return;
  armed_ = false;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto& b : buckets_) {
    if (!b->work) {
      // Some parameter got no gradient this step: it contributes zeros.
      for (size_t k : b->params) {
        if (!seen_[k]) buckets_[slot_[k].first]->flat.narrow(0, slot_[k].second, params_[k].numel()).zero_();
      }
      launch(*b);
    }
    b->work->wait();
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) {
    auto [bi, offset] = slot_[k];
    auto& p = params_[k];
    torch::Tensor avg = buckets_[bi]->flat.narrow(0, offset, p.numel()).view(p.sizes());
    if (p.grad().defined()) {
      p.mutable_grad().copy_(avg);
    } else {
      p.mutable_grad() = torch::empty_like(p).copy_(avg);  // the parameter's own strides
    }
  }
}

}  // namespace vgg
