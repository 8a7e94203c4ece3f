#include "llavacot/dist/comm.h"

#include <cstdlib>
#include <string>

#include "comm_engines.h"
#include "llavacot/util/log.h"

namespace llavacot::dist {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int lo, int hi) {
  const char* v = env(name);
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  LLAVACOT_CHECK(end && *end == '\0' && x >= lo && x <= hi, UsageError, "environment variable ", name, "='", v,
                 "' is not an integer in ", lo, "..", hi);
  return static_cast<int>(x);
}

// Every collective of one process is the identity (a sum over one rank), gathers and scatters are copies.
class DoneWork : public Work {
 public:
  void wait() override {}
};

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::string engine() const override { return "single"; }
  std::shared_ptr<Work> all_reduce_sum(const at::Tensor& t) override {
    count(t);
    return std::make_shared<DoneWork>();
  }
  std::shared_ptr<Work> broadcast(const at::Tensor& t, int root) override {
    LLAVACOT_CHECK(root == 0, UsageError, "broadcast root ", root, " outside a world of 1");
    count(t);
    return std::make_shared<DoneWork>();
  }
  std::shared_ptr<Work> reduce_scatter_sum(const at::Tensor& in, const at::Tensor& out) override {
    LLAVACOT_CHECK(in.numel() == out.numel(), UsageError, "reduce_scatter: ", in.numel(), " elements into a part of ",
                   out.numel());
    count(in);
    out.view(-1).copy_(in.view(-1));
    return std::make_shared<DoneWork>();
  }
  std::shared_ptr<Work> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    LLAVACOT_CHECK(in.numel() == out.numel(), UsageError, "all_gather: a part of ", in.numel(), " elements into ",
                   out.numel());
    count(in);
    out.view(-1).copy_(in.view(-1));
    return std::make_shared<DoneWork>();
  }
  void barrier() override {}
};

}  // namespace

WorldEnv world_from_env() {
  WorldEnv w;
  if (env("RANK") || env("WORLD_SIZE")) {
    LLAVACOT_CHECK(env("RANK") && env("WORLD_SIZE"), UsageError, "RANK and WORLD_SIZE must be set together");
    w.launcher = "torchrun";
    w.world = env_int("WORLD_SIZE", 1, 1 << 20);
    w.rank = env_int("RANK", 0, w.world - 1);
    w.local_world = env("LOCAL_WORLD_SIZE") ? env_int("LOCAL_WORLD_SIZE", 1, w.world) : w.world;
    w.local_rank = env("LOCAL_RANK") ? env_int("LOCAL_RANK", 0, w.local_world - 1) : w.rank % w.local_world;
    if (env("MASTER_ADDR")) w.master_addr = env("MASTER_ADDR");
    if (env("MASTER_PORT")) w.master_port = env_int("MASTER_PORT", 1, 65535);
    if (const char* a = env("TORCHELASTIC_USE_AGENT_STORE")) w.agent_store = std::string(a) == "True" || std::string(a) == "1";
  } else if (env("OMPI_COMM_WORLD_SIZE")) {
    w.launcher = "mpirun";
    w.world = env_int("OMPI_COMM_WORLD_SIZE", 1, 1 << 20);
    w.rank = env("OMPI_COMM_WORLD_RANK") ? env_int("OMPI_COMM_WORLD_RANK", 0, w.world - 1) : 0;
    w.local_world = env("OMPI_COMM_WORLD_LOCAL_SIZE") ? env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1, w.world) : w.world;
    w.local_rank = env("OMPI_COMM_WORLD_LOCAL_RANK") ? env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0, w.local_world - 1) : 0;
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    w.launcher = "slurm";
    w.world = env_int("SLURM_NTASKS", 1, 1 << 20);
    w.rank = env_int("SLURM_PROCID", 0, w.world - 1);
    w.local_rank = env("SLURM_LOCALID") ? env_int("SLURM_LOCALID", 0, w.world - 1) : 0;
    w.local_world = w.world;
    if (const char* per = env("SLURM_NTASKS_PER_NODE")) {
      const long n = std::strtol(per, nullptr, 10);  // "8" or "8(x2)": the leading count
      if (n > 0) w.local_world = static_cast<int>(n);
    }
    if (env("MASTER_ADDR")) w.master_addr = env("MASTER_ADDR");
    if (env("MASTER_PORT")) w.master_port = env_int("MASTER_PORT", 1, 65535);
  }
  return w;
}

std::string available_engines() {
  std::string out = "single";
#ifdef LLAVACOT_HAVE_MPI
  out += ", mpi";
#endif
#ifdef LLAVACOT_HAVE_NCCL
  out += ", nccl";
#endif
  return out;
}

std::unique_ptr<Communicator> make_communicator(const WorldEnv& env_info, const CommOptions& options, bool cuda) {
  std::string engine = options.engine;
  if (engine == "auto") {
    if (cuda && env_info.world > 1) engine = "nccl";
    else if (env_info.launcher == "mpirun" || env_info.world > 1) engine = "mpi";
    else engine = "single";
  }
  LLAVACOT_CHECK(engine == "single" || engine == "mpi" || engine == "nccl", UsageError, "unknown dist engine '", engine,
                 "' (auto, mpi, nccl or single)");
  if (engine == "single") {
    LLAVACOT_CHECK(env_info.world == 1, UsageError, "dist.engine single in a world of ", env_info.world,
                   " processes: every rank would train alone");
    return std::make_unique<SingleCommunicator>();
  }
  if (engine == "mpi") {
    LLAVACOT_CHECK(!cuda, UsageError, "the mpi engine serves CPU tensors; use dist.engine nccl (or auto) on CUDA");
    LLAVACOT_CHECK(env_info.world == 1 || env_info.launcher == "mpirun" || env_info.launcher == "slurm", UsageError, "a CPU world of ", env_info.world,
                   " processes runs on MPI: start it with `llavacot launch --nproc N -- train ...` or mpirun, "
                   "not with ", env_info.launcher);
#ifdef LLAVACOT_HAVE_MPI
    return make_mpi_communicator(env_info, options);
#else
    throw NotImplementedError("this build has no MPI engine (configure with -DLLAVACOT_WITH_MPI=ON and libopenmpi-dev)");
#endif
  }
  LLAVACOT_CHECK(cuda, UsageError, "the nccl engine serves CUDA tensors; on the CPU use dist.engine mpi (or auto)");
#ifdef LLAVACOT_HAVE_NCCL
  return make_nccl_communicator(env_info, options);
#else
  throw NotImplementedError("this build has no NCCL engine (configure with -DLLAVACOT_WITH_NCCL=ON)");
#endif
}

}  // namespace llavacot::dist
