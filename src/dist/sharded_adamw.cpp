#include "llavacot/dist/sharded_adamw.h"

#include <ATen/ATen.h>

#include <cctype>
#include <cmath>
#include <optional>

#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::dist {

namespace {

// "KIND.NAME.START" -> (KIND.NAME, START); whole tensors ("KIND.NAME", NAME ending in a non-number) -> start -1.
std::pair<std::string, int64_t> split_piece_key(const std::string& key) {
  const auto dot = key.rfind('.');
  if (dot == std::string::npos || dot + 1 == key.size()) return {key, -1};
  for (size_t i = dot + 1; i < key.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(key[i]))) return {key, -1};
  return {key.substr(0, dot), std::stoll(key.substr(dot + 1))};
}

// Index of the saved pieces: "KIND.NAME" -> [(start, flat tensor)]; whole tensors have start 0.
std::map<std::string, std::vector<std::pair<int64_t, at::Tensor>>> index_pieces(const std::map<std::string, at::Tensor>& saved) {
  std::map<std::string, std::vector<std::pair<int64_t, at::Tensor>>> out;
  for (const auto& [key, t] : saved) {
    const auto [base, start] = split_piece_key(key);
    out[base].emplace_back(std::max<int64_t>(start, 0), t.reshape({-1}));
  }
  return out;
}

// Fills dst (elements [start, start + len) of the flattened parameter) from the saved pieces of `base`.
void fill_range(const std::map<std::string, std::vector<std::pair<int64_t, at::Tensor>>>& index, const std::string& base,
                int64_t start, const at::Tensor& dst) {
  auto it = index.find(base);
  LLAVACOT_CHECK(it != index.end(), FormatError, "optimizer state has no '", base, "'");
  const int64_t len = dst.numel();
  int64_t covered = 0;
  for (const auto& [s, t] : it->second) {
    const int64_t a = std::max(start, s), e = std::min(start + len, s + t.numel());
    if (a >= e) continue;
    dst.narrow(0, a - start, e - a).copy_(t.narrow(0, a - s, e - a));
    covered += e - a;
  }
  LLAVACOT_CHECK(covered == len, FormatError, "optimizer state '", base, "' covers ", covered, " of elements ", start,
                 "..", start + len, " (pieces missing: were all ranks' optimizer files kept?)");
}

}  // namespace

ShardedAdamW::ShardedAdamW(GradSync& sync, Communicator& comm, Options options)
    : sync_(sync), comm_(comm), options_(options) {
  LLAVACOT_CHECK(sync.sharded(), UsageError, "ShardedAdamW needs GradSync in sharded mode");
  at::NoGradGuard no_grad;
  int64_t elements = 0;
  for (const auto& w : sync.pieces()) {
    const auto& p = sync.params()[w.param].second;
    Piece pc;
    pc.where = w;
    pc.param = p.detach().view({-1}).narrow(0, w.start, w.len);
    const auto f32 = p.options().dtype(at::kFloat).requires_grad(false);
    if (p.scalar_type() != at::kFloat) pc.master = pc.param.to(at::kFloat);
    pc.exp_avg = at::zeros({w.len}, f32);
    pc.exp_avg_sq = at::zeros({w.len}, f32);
    pc.step = at::zeros({}, f32);
    elements += w.len;
    pieces_.push_back(std::move(pc));
  }
  LOG_INFO0("dist", "ZeRO-1: this rank keeps optimizer state for ", elements, " elements in ", pieces_.size(), " pieces");
}

double ShardedAdamW::grad_norm() {
  at::NoGradGuard no_grad;
  double sum = 0;
  for (size_t b = 0; b < sync_.buckets(); ++b) {
    const auto g = sync_.shard_grad(b).to(at::kDouble);
    sum += g.dot(g).item<double>();  // the padding is zero
  }
  auto t = at::full({1}, sum, at::TensorOptions().dtype(at::kDouble).device(sync_.shard_grad(0).device()));
  comm_.all_reduce_sum(t)->wait();
  return std::sqrt(t.cpu().item<double>());
}

void ShardedAdamW::step(double lr, double grad_factor) {
  LLAVACOT_CHECK(grad_factor > 0 && std::isfinite(grad_factor), UsageError, "AdamW gradient factor must be positive, got ",
                 grad_factor);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> p, g, m, v, s;
  std::vector<Piece*> mastered;
  for (auto& pc : pieces_) {
    if (!sync_.used(pc.where.param)) continue;
    auto grad = sync_.shard_grad(pc.where.bucket).narrow(0, pc.where.offset, pc.where.len);
    p.push_back(pc.master.defined() ? pc.master : pc.param);
    g.push_back(grad.scalar_type() == at::kFloat ? grad : grad.to(at::kFloat));
    m.push_back(pc.exp_avg);
    v.push_back(pc.exp_avg_sq);
    s.push_back(pc.step);
    if (pc.master.defined()) mastered.push_back(&pc);
  }
  ++steps_;
  if (!p.empty()) {
    at::_foreach_add_(s, 1.0);
    std::optional<at::Tensor> grad_scale;
    if (grad_factor != 1.0) grad_scale = at::full({}, 1.0 / grad_factor, p.front().options());
    at::_fused_adamw_(p, g, m, v, {}, s, lr, options_.beta1, options_.beta2, options_.weight_decay, options_.eps,
                      /*amsgrad=*/false, /*maximize=*/false, grad_scale);
    for (auto* pc : mastered) pc->param.copy_(pc->master);
  }
  sync_.all_gather_params();
}

std::vector<std::pair<std::string, at::Tensor>> ShardedAdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& pc : pieces_) {
    const std::string tail = sync_.params()[pc.where.param].first + "." + std::to_string(pc.where.start);
    out.emplace_back("exp_avg." + tail, pc.exp_avg);
    out.emplace_back("exp_avg_sq." + tail, pc.exp_avg_sq);
    out.emplace_back("step." + tail, pc.step);
    if (pc.master.defined()) out.emplace_back("master." + tail, pc.master);
  }
  return out;
}

void ShardedAdamW::load_state(const std::map<std::string, at::Tensor>& saved, int64_t steps) {
  at::NoGradGuard no_grad;
  const auto index = index_pieces(saved);
  for (auto& pc : pieces_) {
    const std::string& name = sync_.params()[pc.where.param].first;
    fill_range(index, "exp_avg." + name, pc.where.start, pc.exp_avg);
    fill_range(index, "exp_avg_sq." + name, pc.where.start, pc.exp_avg_sq);
    auto st = index.find("step." + name);
    LLAVACOT_CHECK(st != index.end() && !st->second.empty(), FormatError, "optimizer state has no 'step.", name, "'");
    pc.step.copy_(st->second.front().second.reshape({}));
    if (pc.master.defined()) {
      if (index.count("master." + name)) fill_range(index, "master." + name, pc.where.start, pc.master);
      else pc.master.copy_(pc.param);  // saved without sharding: the weights were the master copy
    }
  }
  steps_ = steps;
}

std::map<std::string, at::Tensor> assemble_optimizer_state(const std::map<std::string, at::Tensor>& saved,
                                                           const std::vector<std::pair<std::string, at::Tensor>>& params) {
  const auto index = index_pieces(saved);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, p] : params) {
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      auto whole = at::empty({p.numel()}, p.options().requires_grad(false));
      fill_range(index, kind + name, 0, whole);
      out[kind + name] = whole.view(p.sizes());
    }
    auto st = index.find("step." + name);
    LLAVACOT_CHECK(st != index.end() && !st->second.empty(), FormatError, "optimizer state has no 'step.", name, "'");
    out["step." + name] = st->second.front().second.reshape({}).clone();
  }
  return out;
}

}  // namespace llavacot::dist
