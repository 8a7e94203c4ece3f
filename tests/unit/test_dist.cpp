// The dist area inside one process: the launcher environments, the engine choice, and GradSync's bucketing,
// overlap, accumulation and unused-parameter handling against a stand-in world of two ranks whose other rank
// mirrors this one (so every sum is twice the local value). Multi-process runs: tests/integration/test_dist_cli.cpp.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdlib>

#include "llavacot/dist/comm.h"
#include "llavacot/dist/grad_sync.h"
#include "support/model_inputs.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {

class Done : public dist::Work {
 public:
  void wait() override {}
};

// A world of two whose other rank holds the same tensors as this one.
class MirrorComm : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 2; }
  std::string engine() const override { return "mirror"; }
  std::shared_ptr<dist::Work> all_reduce_sum(const at::Tensor& t) override {
    ++reductions;
    count(t);
    t.mul_(2);
    return std::make_shared<Done>();
  }
  std::shared_ptr<dist::Work> broadcast(const at::Tensor&, int) override { return std::make_shared<Done>(); }
  std::shared_ptr<dist::Work> reduce_scatter_sum(const at::Tensor& in, const at::Tensor& out) override {
    out.copy_(in.narrow(0, 0, out.numel()) * 2);
    return std::make_shared<Done>();
  }
  std::shared_ptr<dist::Work> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    for (int r = 0; r < 2; ++r) out.narrow(0, r * in.numel(), in.numel()).copy_(in);
    return std::make_shared<Done>();
  }
  void barrier() override {}
  int reductions = 0;
};

struct Net {
  // Registration order: the unused parameter first, so that its bucket is the last one.
  torch::Tensor unused = torch::randn({64}).requires_grad_(true);
  torch::Tensor w1 = torch::randn({64, 64}).requires_grad_(true);
  torch::Tensor w2 = torch::randn({64, 64}).requires_grad_(true);
  std::vector<std::pair<std::string, at::Tensor>> named() { return {{"unused", unused}, {"w1", w1}, {"w2", w2}}; }
  torch::Tensor loss(const torch::Tensor& x) { return x.matmul(w1).tanh().matmul(w2).pow(2).mean(); }
};

void set_env(const char* k, const char* v) { ::setenv(k, v, 1); }

}  // namespace

TEST_CASE("GradSync reduces buckets during backward, in order, and leaves unused parameters without a gradient",
          "[dist]") {
  torch::manual_seed(1);
  Net net;
  const auto x = torch::randn({8, 64});
  // Reference gradients of one backward, alone.
  net.loss(x).backward();
  const auto g1 = net.w1.grad().clone(), g2 = net.w2.grad().clone();
  net.w1.mutable_grad() = torch::Tensor();
  net.w2.mutable_grad() = torch::Tensor();

  MirrorComm comm;
  dist::GradSyncOptions o;
  o.bucket_mb = 0.01;  // 16 KiB parameters: one bucket each
  o.first_bucket_mb = 0.01;
  o.overlap = 1;
  {
    dist::GradSync sync(comm, net.named(), o);
    CHECK(sync.buckets() == 3);
    sync.set_reduce(true);
    net.loss(x).backward();
    CHECK(comm.reductions == 2);  // w2's and w1's buckets went out during backward; the unused one waits
    sync.finish();
    CHECK(comm.reductions == 4);  // the last bucket and the used-parameter flags
    CHECK(test::max_abs_diff(net.w1.grad(), 2 * g1) < 1e-6);
    CHECK(test::max_abs_diff(net.w2.grad(), 2 * g2) < 1e-6);
    CHECK_FALSE(net.unused.grad().defined());
    CHECK(sync.bytes_per_step() == (64 + 64 * 64 * 2) * 4 + 3 * 4);  // gradients + int32 used flags

    // Accumulation: the first micro-batch communicates nothing, the second reduces the sum of both.
    net.w1.mutable_grad() = torch::Tensor();
    net.w2.mutable_grad() = torch::Tensor();
    comm.reductions = 0;
    sync.set_reduce(false);
    net.loss(x).backward();
    CHECK(comm.reductions == 0);
    sync.set_reduce(true);
    net.loss(x * 0.5).backward();
    sync.set_reduce(false);
    sync.finish();
    auto w1 = net.w1.detach().clone().requires_grad_(true), w2 = net.w2.detach().clone().requires_grad_(true);
    (x.matmul(w1).tanh().matmul(w2).pow(2).mean() + (x * 0.5).matmul(w1).tanh().matmul(w2).pow(2).mean()).backward();
    CHECK(test::max_abs_diff(net.w1.grad(), 2 * w1.grad()) < 1e-5);
    CHECK(test::max_abs_diff(net.w2.grad(), 2 * w2.grad()) < 1e-5);
  }
  {  // Without overlap every bucket waits for finish(); the sums are the same.
    net.w1.mutable_grad() = torch::Tensor();
    net.w2.mutable_grad() = torch::Tensor();
    o.overlap = 0;
    comm.reductions = 0;
    dist::GradSync sync(comm, net.named(), o);
    CHECK_FALSE(sync.overlaps());
    sync.set_reduce(true);
    net.loss(x).backward();
    CHECK(comm.reductions == 0);
    sync.finish();
    CHECK(test::max_abs_diff(net.w1.grad(), 2 * g1) < 1e-6);
  }
}

TEST_CASE("the launchers' environments give the rank and world; bad values are named", "[dist]") {
  for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "TORCHELASTIC_USE_AGENT_STORE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
                        "SLURM_NTASKS"})
    ::unsetenv(k);
  auto w = dist::world_from_env();
  CHECK(w.world == 1);
  CHECK(w.launcher.empty());
  set_env("RANK", "3");
  set_env("WORLD_SIZE", "8");
  set_env("LOCAL_RANK", "3");
  set_env("LOCAL_WORLD_SIZE", "4");
  set_env("MASTER_ADDR", "node7");
  set_env("MASTER_PORT", "29511");
  set_env("TORCHELASTIC_USE_AGENT_STORE", "True");
  w = dist::world_from_env();
  CHECK(w.launcher == "torchrun");
  CHECK(w.rank == 3);
  CHECK(w.world == 8);
  CHECK(w.local_world == 4);
  CHECK(w.master_addr == "node7");
  CHECK(w.master_port == 29511);
  CHECK(w.agent_store);
  set_env("RANK", "8");
  CHECK_THROWS_WITH(dist::world_from_env(), Contains("RANK='8'"));
  set_env("RANK", "x");
  CHECK_THROWS_AS(dist::world_from_env(), UsageError);
  for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "TORCHELASTIC_USE_AGENT_STORE"})
    ::unsetenv(k);
  set_env("OMPI_COMM_WORLD_SIZE", "2");
  set_env("OMPI_COMM_WORLD_RANK", "1");
  w = dist::world_from_env();
  CHECK(w.launcher == "mpirun");
  CHECK(w.rank == 1);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");

  // Engine choice: a single process gets the identity engine; impossible combinations are refused.
  dist::WorldEnv one;
  auto c = dist::make_communicator(one, {}, false);
  CHECK(c->engine() == "single");
  auto t = torch::ones({3});
  c->all_reduce_sum(t)->wait();
  CHECK(t.sum().item<float>() == 3.0f);
  dist::WorldEnv two;
  two.world = 2;
  two.launcher = "torchrun";
  CHECK_THROWS_WITH(dist::make_communicator(two, {}, false), Contains("llavacot launch --nproc N"));
  dist::CommOptions single;
  single.engine = "single";
  CHECK_THROWS_AS(dist::make_communicator(two, single, false), UsageError);
  dist::CommOptions mpi;
  mpi.engine = "mpi";
  CHECK_THROWS_WITH(dist::make_communicator(one, mpi, true), Contains("CPU tensors"));
}
