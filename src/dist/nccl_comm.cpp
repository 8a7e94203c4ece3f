// The NCCL engine: CUDA tensors through LibTorch's c10d ProcessGroupNCCL. Rendezvous through a TCPStore at
// MASTER_ADDR:MASTER_PORT: rank 0 hosts it, or, under torchrun's agent (TORCHELASTIC_USE_AGENT_STORE=True),
// every rank is a client of the agent's. Our keys live under a "llavacot" prefix. c10d's NCCL header needs
// USE_C10D_NCCL before any torch header is seen: LibTorch's CMake config defines it for every file (CMakeLists.txt
// checks), so this file shares the precompiled <torch/torch.h>.
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "comm_engines.h"
#include "llavacot/util/log.h"

namespace llavacot::dist {

namespace {

class NcclWork : public Work {
 public:
  NcclWork(c10::intrusive_ptr<c10d::Work> w, std::chrono::milliseconds timeout, std::string what)
      : work_(std::move(w)), timeout_(timeout), what_(std::move(what)) {}
  void wait() override {
    if (!work_) return;
    try {
      if (!work_->wait(timeout_)) throw DistError(str_cat(what_, " did not complete within ", timeout_.count() / 1000.0, " s"));
    } catch (const DistError&) {
      throw;
    } catch (const std::exception& e) {
      throw DistError(str_cat(what_, " failed: ", e.what(),
                              " (another rank crashed, hangs, or runs different collectives; dist.timeout_s)"));
    }
    work_.reset();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::chrono::milliseconds timeout_;
  std::string what_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const WorldEnv& env, const CommOptions& options)
      : rank_(env.rank), world_(env.world), timeout_(options.timeout) {
    const int device = options.cuda_device >= 0 ? options.cuda_device : env.local_rank;
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0 && !env.agent_store;
    so.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(static_cast<std::size_t>(env.world));
    so.waitWorkers = !env.agent_store;
    so.timeout = options.timeout;
    LOG_INFO("dist", "rank ", rank_, "/", world_, ": NCCL rendezvous at ", env.master_addr, ":", env.master_port,
             env.agent_store ? " (torchrun agent store)" : (so.isServer ? " (hosting the store)" : ""), ", cuda:", device);
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("llavacot", store);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = options.timeout;
    pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank_, world_, opts);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string engine() const override { return "nccl"; }

  std::shared_ptr<Work> all_reduce_sum(const at::Tensor& t) override {
    check_tensor(t, "all_reduce");
    count(t);
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return wrap(pg_->allreduce(v, o), "all_reduce");
  }

  std::shared_ptr<Work> broadcast(const at::Tensor& t, int root) override {
    check_tensor(t, "broadcast");
    count(t);
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    return wrap(pg_->broadcast(v, o), "broadcast");
  }

  std::shared_ptr<Work> reduce_scatter_sum(const at::Tensor& in, const at::Tensor& out) override {
    check_tensor(in, "reduce_scatter");
    check_tensor(out, "reduce_scatter");
    LLAVACOT_CHECK(in.numel() == out.numel() * world_, UsageError, "reduce_scatter: ", in.numel(),
                   " elements into parts of ", out.numel(), " over ", world_, " ranks");
    count(in);
    std::vector<at::Tensor> outs{out};
    std::vector<std::vector<at::Tensor>> ins{in.view(-1).chunk(world_)};
    c10d::ReduceScatterOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    return wrap(pg_->reduce_scatter(outs, ins, o), "reduce_scatter");
  }

  std::shared_ptr<Work> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    check_tensor(in, "all_gather");
    check_tensor(out, "all_gather");
    LLAVACOT_CHECK(out.numel() == in.numel() * world_, UsageError, "all_gather: parts of ", in.numel(), " elements into ",
                   out.numel(), " over ", world_, " ranks");
    count(in);
    std::vector<std::vector<at::Tensor>> outs{out.view(-1).chunk(world_)};
    std::vector<at::Tensor> ins{in.view(-1)};
    return wrap(pg_->allgather(outs, ins), "all_gather");
  }

  void barrier() override { wrap(pg_->barrier(), "barrier")->wait(); }

 private:
  static void check_tensor(const at::Tensor& t, const char* op) {
    LLAVACOT_CHECK(t.defined() && t.is_cuda() && t.is_contiguous(), UsageError, op,
                   " needs a contiguous CUDA tensor (the nccl engine)");
  }
  std::shared_ptr<Work> wrap(c10::intrusive_ptr<c10d::Work> w, const char* what) {
    return std::make_shared<NcclWork>(std::move(w), timeout_, str_cat("NCCL ", what, " on rank ", rank_));
  }

  int rank_, world_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const WorldEnv& env, const CommOptions& options) {
  return std::make_unique<NcclCommunicator>(env, options);
}

long nccl_default_timeout_ms() {
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(opts->timeout).count());
}

}  // namespace llavacot::dist
