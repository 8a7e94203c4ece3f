#include "llavacot/dist/grad_sync.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <map>

#include "llavacot/util/log.h"

namespace llavacot::dist {

// Runs after AccumulateGrad has added a backward pass's gradient into the parameter's .grad.
struct GradReadyHook : torch::autograd::PostAccumulateGradHook {
  GradReadyHook(GradSync* owner, size_t index) : owner(owner), index(index) {}
  void operator()(const torch::autograd::Variable&) override { owner->on_grad(index); }
  GradSync* owner;
  size_t index;
};

GradSync::GradSync(Communicator& comm, std::vector<std::pair<std::string, at::Tensor>> params, GradSyncOptions options)
    : comm_(comm), params_(std::move(params)) {
  LLAVACOT_CHECK(options.bucket_mb > 0 && options.first_bucket_mb > 0, UsageError, "bucket sizes must be positive");
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  ready_.assign(n, false);
  // Reverse registration order; a bucket holds one dtype and at most its capacity (a larger tensor alone).
  for (size_t k = n; k-- > 0;) {
    const auto& p = params_[k].second;
    LLAVACOT_CHECK(p.requires_grad() && p.is_leaf(), UsageError, "parameter ", params_[k].first, " is not trainable");
    bool fresh = buckets_.empty();
    if (!fresh) {
      const auto& last = buckets_.back();
      const auto& head = params_[last.members.front()].second;
      const double cap_mb = buckets_.size() == 1 ? options.first_bucket_mb : options.bucket_mb;
      const double bytes = static_cast<double>((last.numel + p.numel()) * p.element_size());
      fresh = head.scalar_type() != p.scalar_type() || head.device() != p.device() || bytes > cap_mb * 1048576.0;
    }
    if (fresh) buckets_.emplace_back();
    auto& b = buckets_.back();
    b.members.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  shard_ = options.shard && comm_.world() > 1;
  overlap_ = options.overlap >= 0 ? options.overlap != 0 : comm_.engine() != "mpi";
  const int world = comm_.world(), rank = comm_.rank();
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    const auto& head = params_[b.members.front()].second;
    const auto opts = head.options().requires_grad(false);
    if (world == 1) continue;  // nothing to reduce: no buffers
    if (!shard_) {
      b.flat = at::empty({b.numel}, opts);
      continue;
    }
    b.part = (b.numel + world - 1) / world;
    b.flat = at::zeros({b.part * world}, opts);  // the padding stays zero
    b.shard = at::empty({b.part}, opts);
    const int64_t lo = b.part * rank, hi = std::min(b.numel, lo + b.part);
    for (size_t j = 0; j < b.members.size(); ++j) {
      const int64_t a = std::max(lo, b.offsets[j]);
      const int64_t e = std::min(hi, b.offsets[j] + params_[b.members[j]].second.numel());
      if (a < e) pieces_.push_back({b.members[j], a - b.offsets[j], e - a, bi, a - lo});
    }
  }
  used_cpu_.assign(n, 0);
  // int32: a sum over any number of ranks stays exact (uint8 would wrap at 256).
  used_ = at::zeros({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kInt).device(n ? params_[0].second.device() : at::kCPU));
  for (size_t k = 0; k < n; ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k].second, std::make_unique<GradReadyHook>(this, k));
  reset_step();
  const int64_t bytes = bytes_per_step();
  LOG_INFO0("dist", "gradient sync: ", n, " parameters in ", buckets_.size(), " buckets, ", bytes / 1048576.0,
            " MiB a step, engine ", comm_.engine(), ", world ", comm_.world(),
            overlap_ ? ", reduced during backward" : ", reduced after backward");
}

GradSync::~GradSync() {
  for (auto& [name, p] : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

int64_t GradSync::bytes_per_step() const {
  int64_t bytes = used_.numel() * used_.element_size();
  for (const auto& b : buckets_) bytes += b.numel * params_[b.members.front()].second.element_size();
  return bytes;
}

void GradSync::set_reduce(bool on) { reduce_ = on && overlap_; }

void GradSync::reset_step() {
  std::fill(ready_.begin(), ready_.end(), false);
  for (auto& b : buckets_) {
    b.pending = b.members.size();
    b.launched = false;
    b.work.reset();
  }
  next_launch_ = 0;
  any_ready_ = false;
}

void GradSync::on_grad(size_t index) {
  if (!reduce_ || comm_.world() == 1) return;
  auto& b = buckets_[bucket_of_[index]];
  LLAVACOT_CHECK(!b.launched, RuntimeError, "parameter ", params_[index].first,
                 " received a gradient after its bucket was reduced (is it used twice across separate backward calls?)");
  if (ready_[index]) return;  // a second contribution before the launch is already in .grad
  ready_[index] = true;
  any_ready_ = true;
  if (--b.pending == 0) launch_ready();
}

void GradSync::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(buckets_[next_launch_++]);
}

void GradSync::launch(Bucket& b) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < b.members.size(); ++j) {
    const auto& p = params_[b.members[j]].second;
    auto dst = b.flat.narrow(0, b.offsets[j], p.numel());
    const auto& g = p.grad();
    if (g.defined()) {
      dst.copy_(g.reshape({-1}));
      used_[static_cast<int64_t>(b.members[j])] = 1;
      // The bucket holds it now: dropping the local copy keeps one gradient's worth of memory, not two.
      params_[b.members[j]].second.mutable_grad() = at::Tensor();
    } else {
      dst.zero_();
    }
  }
  b.launched = true;
  b.work = shard_ ? comm_.reduce_scatter_sum(b.flat, b.shard) : comm_.all_reduce_sum(b.flat);
}

void GradSync::finish() {
  if (comm_.world() == 1) {
    reset_step();
    return;
  }
  at::NoGradGuard no_grad;
  // Whatever backward did not complete (parameters this rank's batch did not reach, or no backward at all).
  for (auto& b : buckets_) b.pending = 0;
  launch_ready();
  auto used_work = comm_.all_reduce_sum(used_);
  for (auto& b : buckets_) b.work->wait();
  used_work->wait();
  const auto used = used_.to(at::kCPU);
  const auto* flags = used.data_ptr<int32_t>();
  for (size_t i = 0; i < used_cpu_.size(); ++i) used_cpu_[i] = flags[i] != 0;
  for (auto& b : buckets_) {
    for (size_t j = 0; j < b.members.size(); ++j) {
      auto& p = params_[b.members[j]].second;
      if (flags[b.members[j]] == 0 || shard_) {
        p.mutable_grad() = at::Tensor();  // no rank produced one; or sharded: the optimizer reads the shards
      } else {
        p.mutable_grad() = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes());
      }
    }
  }
  used_.zero_();
  reset_step();
}

void GradSync::all_gather_params() {
  LLAVACOT_CHECK(shard_, UsageError, "all_gather_params needs the sharded mode");
  at::NoGradGuard no_grad;
  const int64_t rank = comm_.rank();
  std::vector<std::shared_ptr<Work>> works(buckets_.size());
  std::vector<at::Tensor> sends(buckets_.size());
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    sends[bi] = at::zeros({b.part}, b.flat.options());
  }
  for (const auto& pc : pieces_)
    sends[pc.bucket].narrow(0, pc.offset, pc.len).copy_(params_[pc.param].second.detach().reshape({-1}).narrow(0, pc.start, pc.len));
  for (size_t bi = 0; bi < buckets_.size(); ++bi) works[bi] = comm_.all_gather(sends[bi], buckets_[bi].flat);
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    auto& b = buckets_[bi];
    works[bi]->wait();
    for (size_t j = 0; j < b.members.size(); ++j) {
      auto p = params_[b.members[j]].second.detach();
      p.copy_(b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes()));
    }
    // The padding past numel is zero in every rank's send; the flat buffer is overwritten before the next use.
    b.flat.narrow(0, b.numel, b.part * comm_.world() - b.numel).zero_();
  }
  (void)rank;
}

void broadcast_from_rank0(Communicator& comm, const std::vector<at::Tensor>& tensors, double bucket_mb) {
  if (comm.world() == 1 || tensors.empty()) return;
  at::NoGradGuard no_grad;
  const int64_t cap = static_cast<int64_t>(bucket_mb * 1048576.0);
  // Groups of consecutive tensors of one dtype, each group packed, sent and unpacked in turn.
  size_t i = 0;
  while (i < tensors.size()) {
    size_t j = i;
    int64_t bytes = 0;
    while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
           (j == i || bytes + tensors[j].numel() * tensors[j].element_size() <= cap)) {
      bytes += tensors[j].numel() * tensors[j].element_size();
      ++j;
    }
    std::vector<at::Tensor> flat_parts;
    for (size_t k = i; k < j; ++k) flat_parts.push_back(tensors[k].detach().reshape({-1}));
    auto flat = at::cat(flat_parts);
    comm.broadcast(flat, 0)->wait();
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      auto t = tensors[k].detach();
      t.copy_(flat.narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
    i = j;
  }
}

}  // namespace llavacot::dist
