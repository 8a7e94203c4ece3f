// llavacot bench dist: what data-parallel synchronisation costs. Runs itself as N ranks under `llavacot launch`
// (CPU: the MPI engine); each rank times the training step (forward, backward, optimizer) three ways on the same
// batch: without synchronisation (the compute alone), with GradSync as the trainer runs it (buckets reduced
// while backward goes on), and with every bucket reduced only after backward (no overlap). Overlap efficiency
// = 1 - (synced - compute) / (serial - compute): the share of the communication hidden behind backward.
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include <torch/torch.h>

#include "bench_util.h"
#include "common.h"
#include "llavacot/data/batch.h"
#include "llavacot/dist/comm.h"
#include "llavacot/dist/grad_sync.h"
#include "llavacot/model/mllama.h"
#include "llavacot/train/optim.h"
#include "llavacot/train/trainer.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

using Clock = std::chrono::steady_clock;

void bench_dist_rank(const BenchDistArgs& args) {
  const auto env = dist::world_from_env();
  dist::CommOptions co;
  co.timeout = std::chrono::minutes(10);
  auto comm = dist::make_communicator(env, co, false);
  log::set_rank(comm->rank());
  if (args.threads > 0) at::set_num_threads(args.threads);
  const auto c = model::load_preset(args.preset);
  ModelConfig mc;
  mc.preset = args.preset;
  auto m = model::build_model(mc, 0);
  const data::Batch b = bench_batch(bench_inputs(c, args.batch, args.seq, 6, torch::kFloat));
  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params;
  for (auto& [n, p] : m->named_weights()) {
    named.emplace_back(n, p);
    params.push_back(p);
  }
  dist::GradSyncOptions so;
  so.bucket_mb = args.bucket_mb;
  so.overlap = 1;  // the overlapped mode is measured whatever the engine's default
  dist::GradSync sync(*comm, named, so);
  train::AdamW opt(named, {1e-5, 0.9, 0.999, 1e-8, 0.0});
  const int64_t denominator = train::count_trained_tokens({b}) * comm->world();
  // mode 0: no synchronisation; 1: overlapped (as the trainer); 2: all buckets after backward.
  auto step = [&](int mode) {
    train::forward_backward(m, {b}, torch::kCPU, "fp32", denominator, mode == 1 ? &sync : nullptr);
    if (mode != 0) sync.finish();
    opt.step(1e-5);
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  };
  nlohmann::json times;
  const char* names[] = {"compute", "synced", "serial"};
  for (int mode : {0, 1, 2, 0, 1, 2}) {  // interleaved twice, best of each
    step(mode);
    double best = 1e300;
    for (int i = 0; i < args.iters; ++i) {
      comm->barrier();
      const auto t0 = Clock::now();
      step(mode);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const char* key = names[mode];
    times[key] = times.contains(key) ? std::min(times[key].get<double>(), best) : best;
  }
  if (comm->rank() != 0) return;
  const double compute = times["compute"], synced = times["synced"], serial = times["serial"];
  const double hidden = serial > compute ? 1.0 - (synced - compute) / (serial - compute) : 1.0;
  const int64_t bytes = sync.bytes_per_step();
  nlohmann::json report = {{"bench", "dist"},      {"preset", args.preset},     {"ranks", comm->world()},
                           {"engine", comm->engine()}, {"threads_per_rank", at::get_num_threads()},
                           {"batch_per_rank", args.batch}, {"seq", args.seq},  {"buckets", sync.buckets()},
                           {"payload_bytes_per_step", bytes},
                           {"ring_wire_bytes_per_rank", 2.0 * (comm->world() - 1) / comm->world() * static_cast<double>(bytes)},
                           {"step_s", times},          {"overlap_efficiency", hidden}};
  std::cout << report.dump() << "\n";
  std::cout << std::fixed << std::setprecision(3) << "data-parallel step, preset " << args.preset << ", " << comm->world()
            << " ranks (" << comm->engine() << ", " << at::get_num_threads() << " thread(s) each), " << args.batch << " x "
            << args.seq << " tokens per rank, " << sync.buckets() << " buckets, " << std::setprecision(1)
            << static_cast<double>(bytes) / 1048576.0 << " MiB all-reduced per step\n"
            << std::setprecision(3) << "  compute only " << compute << " s, synchronised (overlapped) " << synced
            << " s, synchronised after backward " << serial << " s\n"
            << "  communication " << serial - compute << " s, exposed " << synced - compute << " s: overlap efficiency "
            << std::setprecision(2) << hidden << "\n";
}

}  // namespace

void bench_dist(const BenchDistArgs& args) {
  if (args.worker) {
    bench_dist_rank(args);
    return;
  }
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string cmd = sh_quote(self) + " launch --nproc " + std::to_string(args.nproc) + " -- bench dist --worker" +
                          " --preset " + sh_quote(args.preset) + " --threads " + std::to_string(args.threads);
  LOG_INFO("bench", "running ", args.nproc, " ranks: ", cmd);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) throw ExitCode(WIFEXITED(rc) ? WEXITSTATUS(rc) : 1);
}

}  // namespace llavacot::cli
