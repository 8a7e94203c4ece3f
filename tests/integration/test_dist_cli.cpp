// Data-parallel training with two CPU ranks on loopback (`llavacot launch`, the MPI engine): the ranks end
// with the weights of one process trained on the concatenated global batch, and a rank that dies makes the
// launcher stop the other and exit non-zero.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "llavacot/io/safetensors.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

const std::string& demo_dir() {
  static std::string dir;
  if (dir.empty()) dir = test::make_demo(test::fresh_dir("dist_cli_demo_" + std::to_string(::getpid())), 120);
  return dir;
}

// Plain data order (no shuffle, no length grouping) so that step k of the 2-rank run sees the same records as
// step k of one process with twice the batch.
std::string train_args(const std::string& run_dir, int batch, const std::string& extra) {
  return test::demo_train_args(demo_dir(), run_dir) + " --set data.shuffle=false --set data.group_by_length=false" +
         " --set train.batch_size=" + std::to_string(batch) +
         " --set train.clip_grad_norm=1.0 --set dist.timeout_s=60 " + extra;
}

std::map<std::string, torch::Tensor> weights(const std::string& dir) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : safetensors::load_all(dir + "/model.safetensors")) out[name] = t;
  return out;
}

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> out;
  std::ifstream f(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return out;
}

}  // namespace

TEST_CASE("two MPI ranks train like one process on the concatenated batch", "[cli][dist]") {
  const std::string base = test::fresh_dir("dist_equal");
  auto one = test::run_command(test::cli() + train_args(base + "/one", 4, "--set train.max_steps=4"));
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  auto two = test::run_command(test::cli() + " launch --nproc 2 --" +
                               train_args(base + "/two", 2, "--set train.max_steps=4 --set dist.bucket_mb=0.5"));
  // Buckets reduced during backward (the mpi engine's default is after it): the same result.
  auto overlapped = test::run_command(
      test::cli() + " launch --nproc 2 --" +
      train_args(base + "/overlapped", 2, "--set train.max_steps=4 --set dist.bucket_mb=0.5 --set dist.overlap=on"));
  INFO(overlapped.output);
  REQUIRE(overlapped.exit_code == 0);
  CHECK_THAT(overlapped.output, Contains("reduced during backward"));
  INFO(two.output);
  REQUIRE(two.exit_code == 0);
  CHECK_THAT(two.output, Contains("[rank 0]") && Contains("[rank 1]") && Contains("data parallel: 2 ranks, engine mpi"));
  CHECK_THAT(two.output, Contains("parameters identical on all 2 ranks"));
  const auto a = losses(base + "/one"), b = losses(base + "/two");
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == Approx(a[i]).epsilon(1e-5));
  const auto wa = weights(base + "/one/final"), wb = weights(base + "/two/final");
  REQUIRE(wa.size() == wb.size());
  double worst = 0;
  for (const auto& [name, t] : wa) worst = std::max(worst, test::max_abs_diff(t, wb.at(name)));
  CHECK(worst < 1e-5);
  const auto wo = weights(base + "/overlapped/final");
  worst = 0;
  for (const auto& [name, t] : wa) worst = std::max(worst, test::max_abs_diff(t, wo.at(name)));
  CHECK(worst < 1e-5);
  // Both ranks checkpointed nothing of their own: rank 0 wrote the run directory, rank 1 its bad-record file.
  CHECK(stdfs::exists(base + "/two/bad_records.rank-1.jsonl"));
}

TEST_CASE("a rank that dies makes launch stop the other and exit non-zero", "[cli][dist]") {
  const std::string base = test::fresh_dir("dist_kill");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = test::run_command("LLAVACOT_TEST_SIGKILL_AFTER_STEP=2 LLAVACOT_TEST_FAULT_RANK=1 " + test::cli() +
                             " launch --nproc 2 --" + train_args(base + "/run", 2, "--set train.max_steps=50"));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK(took < 120);
  CHECK_FALSE(stdfs::exists(base + "/run/final"));
}

TEST_CASE("a rank that hangs makes the others stop with an error within the timeout", "[cli][dist]") {
  const std::string base = test::fresh_dir("dist_hang");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = test::run_command("LLAVACOT_TEST_HANG_AFTER_STEP=2 LLAVACOT_TEST_FAULT_RANK=1 " + test::cli() +
                             " launch --nproc 2 --grace 3 --" +
                             train_args(base + "/run", 2, "--set train.max_steps=50 --set dist.timeout_s=5"));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK(took < 90);
  CHECK_THAT(r.output, Contains("did not complete within 5 s"));
}

TEST_CASE("a CPU world of several processes without MPI is refused with the way to start it", "[cli][dist]") {
  auto r = test::run_command("RANK=0 WORLD_SIZE=2 " + test::cli() + train_args(test::fresh_dir("dist_env") + "/run", 2, ""));
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Contains("llavacot launch --nproc N"));
}

TEST_CASE("ZeRO-1 trains like plain data parallel and its checkpoints resume at any world size", "[cli][dist]") {
  const std::string base = test::fresh_dir("dist_zero1");
  const std::string launch2 = test::cli() + " launch --nproc 2 --";
  const std::string steps = " --set train.max_steps=4 --set train.save_every=2 --set dist.bucket_mb=0.5";
  auto plain = test::run_command(launch2 + train_args(base + "/plain", 2, steps));
  INFO(plain.output);
  REQUIRE(plain.exit_code == 0);
  auto zero = test::run_command(launch2 + train_args(base + "/zero", 2, steps + " --set dist.zero1=true"));
  INFO(zero.output);
  REQUIRE(zero.exit_code == 0);
  CHECK_THAT(zero.output, Contains("ZeRO-1: this rank keeps optimizer state"));
  CHECK(stdfs::exists(base + "/zero/checkpoint-4/optimizer.rank-0-of-2.safetensors"));
  CHECK(stdfs::exists(base + "/zero/checkpoint-4/optimizer.rank-1-of-2.safetensors"));
  CHECK_FALSE(stdfs::exists(base + "/zero/checkpoint-4/optimizer.safetensors"));
  const auto a = losses(base + "/plain"), b = losses(base + "/zero");
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == Approx(a[i]).epsilon(1e-5));
  const auto wa = weights(base + "/plain/final"), wz = weights(base + "/zero/final");
  double worst = 0;
  for (const auto& [name, t] : wa) worst = std::max(worst, test::max_abs_diff(t, wz.at(name)));
  CHECK(worst < 1e-5);

  // Killed after step 2 (rank 1 dies once checkpoint-2 is complete), then resumed by two ranks: the same result.
  auto killed = test::run_command("LLAVACOT_TEST_SIGKILL_AFTER_STEP=2 LLAVACOT_TEST_FAULT_RANK=1 " + launch2 +
                                  train_args(base + "/resumed", 2, steps + " --set dist.zero1=true"));
  INFO(killed.output);
  CHECK(killed.exit_code != 0);
  REQUIRE(stdfs::exists(base + "/resumed/checkpoint-2/trainer_state.json"));
  REQUIRE_FALSE(stdfs::exists(base + "/resumed/checkpoint-4"));
  stdfs::copy(base + "/resumed", base + "/resumed1", stdfs::copy_options::recursive);
  auto resumed = test::run_command(launch2 + train_args(base + "/resumed", 2, steps + " --set dist.zero1=true") +
                                   " --resume auto");
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  const auto wr = weights(base + "/resumed/final");
  worst = 0;
  for (const auto& [name, t] : wz) worst = std::max(worst, test::max_abs_diff(t, wr.at(name)));
  CHECK(worst < 1e-6);
  // ... and by one process with the same global batch, without sharding: the optimizer state is reassembled.
  stdfs::remove_all(base + "/resumed1/checkpoint-4");
  auto single = test::run_command(test::cli() + train_args(base + "/resumed1", 4, steps) + " --resume auto");
  INFO(single.output);
  REQUIRE(single.exit_code == 0);
  const auto w1 = weights(base + "/resumed1/final");
  worst = 0;
  for (const auto& [name, t] : wz) worst = std::max(worst, test::max_abs_diff(t, w1.at(name)));
  CHECK(worst < 1e-5);
}
