// Collectives across the ranks of a data-parallel run: one interface with three engines. MPI for CPU tensors
// (Open MPI's mpirun starts the processes), NCCL through LibTorch's c10d for CUDA tensors (rendezvous through a
// TCPStore from the torchrun environment), and a world of one process, where every collective is the identity.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "llavacot/util/error.h"

namespace llavacot::dist {

/// A collective failed or did not complete within the timeout (another rank crashed, hangs, or disagrees).
class DistError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

/// Where this process sits, read from its launcher's environment:
///  - torchrun / `llavacot launch` / any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
///    MASTER_ADDR, MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True: the agent hosts the store, every rank is a
///    client of it);
///  - Open MPI's mpirun (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE);
///  - Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE);
///  - none of these: a world of one.
struct WorldEnv {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool agent_store = false;
  std::string launcher;  // "torchrun" | "mpirun" | "slurm" | "" (single process)
};

/// Reads WorldEnv; throws UsageError naming the variable when one is malformed or out of range.
WorldEnv world_from_env();

/// An operation in flight. wait() returns once it completed on this rank; throws DistError when it failed or
/// did not complete within the communicator's timeout.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string engine() const = 0;  // "mpi" | "nccl" | "single"
  /// Element-wise sum over the ranks, in place. `t` must be contiguous; float32, float64, bfloat16 or int64.
  virtual std::shared_ptr<Work> all_reduce_sum(const at::Tensor& t) = 0;
  /// Rank `root`'s values into `t` on every rank.
  virtual std::shared_ptr<Work> broadcast(const at::Tensor& t, int root) = 0;
  /// `in` holds world() equal parts; `out` (one part long) receives this rank's part of the sum.
  virtual std::shared_ptr<Work> reduce_scatter_sum(const at::Tensor& in, const at::Tensor& out) = 0;
  /// `out` (world() times `in`'s length) receives every rank's `in`, rank r's at r * in.numel().
  virtual std::shared_ptr<Work> all_gather(const at::Tensor& in, const at::Tensor& out) = 0;
  virtual void barrier() = 0;

  /// Payload bytes this rank has handed to collectives (the tensors' sizes, not the wire traffic, which
  /// depends on the engine's algorithm: a ring all-reduce moves 2 (N - 1) / N times the payload).
  int64_t payload_bytes() const { return payload_bytes_; }

 protected:
  void count(const at::Tensor& t) { payload_bytes_ += static_cast<int64_t>(t.numel() * t.element_size()); }

 private:
  int64_t payload_bytes_ = 0;
};

struct CommOptions {
  std::string engine = "auto";  // auto (nccl for CUDA, mpi under mpirun or for a CPU world > 1, single for one
                                // process) | mpi | nccl | single
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  int cuda_device = -1;  // nccl: the CUDA device of this rank (-1 = LOCAL_RANK)
};

/// The communicator of this process for tensors on CUDA (`cuda`) or the CPU. Throws UsageError when the
/// engine cannot serve this environment (e.g. a CPU world of several processes started without mpirun), and
/// NotImplementedError when this build lacks the engine.
std::unique_ptr<Communicator> make_communicator(const WorldEnv& env, const CommOptions& options, bool cuda);

/// Engines compiled into this build ("single" always; "mpi", "nccl" when enabled at configure time).
std::string available_engines();

}  // namespace llavacot::dist
