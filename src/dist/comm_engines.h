// The engines behind make_communicator (src/dist/comm.cpp), each in its own translation unit so that only
// it sees its library's headers (mpi.h; c10d's ProcessGroupNCCL.hpp with its defines).
#pragma once

#include <memory>

#include "llavacot/build_config.h"
#include "llavacot/dist/comm.h"

namespace llavacot::dist {

#ifdef LLAVACOT_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator(const WorldEnv& env, const CommOptions& options);
#endif
#ifdef LLAVACOT_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const WorldEnv& env, const CommOptions& options);
/// c10d's default NCCL timeout; building its options proves at link time that libtorch_cuda's c10d symbols
/// resolve, and touches no GPU.
long nccl_default_timeout_ms();
#endif

}  // namespace llavacot::dist
