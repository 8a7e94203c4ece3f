// `llavacot train` end to end on the demo data: the run directory, the loss falling, an exact resume after
// SIGKILL, SIGTERM writing a checkpoint, frozen groups, non-finite steps.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "llavacot/data/demo.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/train/vision_pretrain.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

// Demo data for the cases of one process (generated once; deterministic). CTest runs each case in its own
// process, possibly in parallel, so each process has its own folder.
const std::string& demo_dir() {
  static std::string dir;
  if (dir.empty()) {
    dir = test::make_demo(test::fresh_dir("train_cli_demo_" + std::to_string(::getpid())), 300);
  }
  return dir;
}

std::string train_cmd(const std::string& run_dir, const std::string& extra) {
  return test::cli() + test::demo_train_args(demo_dir(), run_dir) + " " + extra;
}

std::vector<nlohmann::json> metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream f(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST_CASE("the demo config trains: the loss falls and the run directory is complete", "[cli][train]") {
  const std::string run = test::fresh_dir("train_cli_falls") + "/run";
  auto r = test::run_command(train_cmd(run, "--set train.max_steps=100 --set train.save_every=40 --set train.keep_last=2"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("trained: 100 steps"));
  const auto m = metrics(run);
  REQUIRE(m.size() == 100);
  for (const char* key : {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "elapsed_s",
                          "peak_memory_bytes"})
    CHECK(m.back().contains(key));
  double head = 0, tail = 0;
  for (int i = 0; i < 10; ++i) {
    head += m[static_cast<size_t>(i)].at("loss").get<double>() / 10;
    tail += m[m.size() - 10 + static_cast<size_t>(i)].at("loss").get<double>() / 10;
  }
  INFO("mean loss of the first 10 steps " << head << ", of the last 10 " << tail);
  CHECK(tail < 0.6 * head);
  CHECK(stdfs::exists(run + "/config.resolved.yaml"));
  CHECK(stdfs::exists(run + "/bad_records.jsonl"));
  CHECK(!stdfs::exists(run + "/checkpoint-40"));  // keep_last 2: 80 and 100 remain
  CHECK(stdfs::exists(run + "/checkpoint-80/trainer_state.json"));
  CHECK(stdfs::exists(run + "/checkpoint-100/optimizer.safetensors"));
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) CHECK(stdfs::exists(run + "/final/" + f));
  // scripts/plot_metrics.py draws the curves.
  r = test::run_command(test::python_script_command("scripts/plot_metrics.py", test::shell_quote(run + "/metrics.jsonl")));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const char* png : {"loss.png", "lr.png", "throughput.png"}) CHECK(stdfs::file_size(run + "/" + png) > 1000);
  // Starting again in the same run directory without --resume is refused.
  r = test::run_command(train_cmd(run, "--set train.max_steps=100"));
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Contains("--resume auto"));
}

TEST_CASE("a run killed with SIGKILL and resumed gives the uninterrupted run's losses exactly", "[cli][train]") {
  const std::string base = test::fresh_dir("train_cli_resume");
  const std::string opts = "--set train.max_steps=14 --set train.save_every=4 --set train.grad_accum=2";
  auto r = test::run_command(train_cmd(base + "/straight", opts));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = test::run_command("LLAVACOT_TEST_SIGKILL_AFTER_STEP=7 " + train_cmd(base + "/killed", opts));
  INFO(r.output);
  CHECK(r.exit_code != 0);  // died by SIGKILL after step 7; the last checkpoint is step 4
  CHECK(metrics(base + "/killed").size() == 7);
  r = test::run_command(train_cmd(base + "/killed", opts + " --resume auto"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("resumed from"));
  const auto a = metrics(base + "/straight"), b = metrics(base + "/killed");
  REQUIRE(a.size() == 14);
  REQUIRE(b.size() == 14);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(b[i].at("step") == a[i].at("step"));
    CHECK(b[i].at("loss").get<double>() == a[i].at("loss").get<double>());  // bit-exact
    CHECK(b[i].at("lr").get<double>() == a[i].at("lr").get<double>());
  }
  CHECK(fs::read_file(base + "/killed/final/model.safetensors") == fs::read_file(base + "/straight/final/model.safetensors"));

  // A damaged trainer state is refused with the file named.
  fs::write_file_atomic(base + "/killed/checkpoint-14/trainer_state.json", "{\"step\": 3}");
  r = test::run_command(train_cmd(base + "/killed", opts + " --resume " + test::shell_quote(base + "/killed/checkpoint-14")));
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Contains("checkpoint-14/trainer_state.json") && Contains("not a trainer state"));
}

TEST_CASE("SIGTERM writes a checkpoint and stops cleanly; frozen groups stay bit-identical", "[cli][train]") {
  const std::string base = test::fresh_dir("train_cli_signal");
  const std::string run = base + "/run";
  const std::string cmd = train_cmd(run, "--set train.max_steps=100000 --set \"train.freeze=[vision_tower, embeddings]\"") +
                          " > " + test::shell_quote(base + "/log.txt") + " 2>&1";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until a few steps are logged, then ask it to stop.
  for (int i = 0; i < 600 && metrics(run).size() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string log = fs::read_file(base + "/log.txt");
  INFO(log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(log, Contains("interrupted") && Contains("--resume auto"));
  const auto steps = metrics(run).size();
  CHECK(stdfs::exists(run + "/checkpoint-" + std::to_string(steps) + "/trainer_state.json"));
  CHECK(!stdfs::exists(run + "/final"));

  // The frozen groups equal a fresh model's from the same seed; a trained group does not.
  const std::string fresh = base + "/fresh";
  // One step under warmup has learning rate 0 (and so no weight decay either): the initial weights.
  auto r = test::run_command(train_cmd(fresh, "--set train.max_steps=1"));
  REQUIRE(r.exit_code == 0);
  const auto trained = safetensors::load_all(run + "/checkpoint-" + std::to_string(steps) + "/model.safetensors");
  std::map<std::string, at::Tensor> init;
  for (auto& [k, t] : safetensors::load_all(fresh + "/final/model.safetensors")) init[k] = t;
  int frozen = 0, moved = 0;
  for (const auto& [k, t] : trained) {
    const bool is_frozen = k.rfind("vision_model.", 0) == 0 || k.rfind("language_model.model.embed_tokens.", 0) == 0;
    if (is_frozen) {
      ++frozen;
      CHECK(torch::equal(t, init.at(k)));
    } else if (!torch::equal(t, init.at(k))) {
      ++moved;
    }
  }
  CHECK(frozen > 10);
  CHECK(moved > 10);
}

TEST_CASE("non-finite steps are skipped, counted, and stop the run after the configured number", "[cli][train]") {
  const std::string base = test::fresh_dir("train_cli_nan");
  // Weights with one NaN in the output projection: every loss is NaN.
  auto r = test::run_command(train_cmd(base + "/init", "--set train.max_steps=1"));
  REQUIRE(r.exit_code == 0);
  auto tensors = safetensors::load_all(base + "/init/final/model.safetensors");
  for (auto& [name, t] : tensors)
    if (name == "language_model.lm_head.weight") {
      t = t.clone();
      t.view(-1)[7] = std::numeric_limits<float>::quiet_NaN();
    }
  fs::create_dirs(base + "/nan");
  safetensors::save(base + "/nan/model.safetensors", tensors);
  r = test::run_command(train_cmd(base + "/run", "--set train.max_steps=50 --set train.max_nonfinite_steps=3 "
                                                 "--set model.weights=" + test::shell_quote(base + "/nan/model.safetensors")));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains("3 steps in a row had a non-finite loss or gradient") && Contains("train.lr"));
  CHECK_THAT(r.output, Contains("non-finite loss, step skipped (1 in a row, 1 in all)"));
  const auto m = metrics(base + "/run");
  REQUIRE(m.size() == 2);  // the third skipped step aborts before its metrics line
  CHECK(m.back().at("skipped").get<int64_t>() == 2);
  CHECK(m.back().at("loss").is_null());
}

TEST_CASE("bench train measures every precision and checkpointing mode in its own process", "[cli][train]") {
  const std::string out = test::fresh_dir("train_cli_bench");
  auto r = test::run_command(test::cli() + " bench train --preset tiny --threads 1 --no-peer --out " + test::shell_quote(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto at = r.output.find("{\"bench\":\"train\"");
  REQUIRE(at != std::string::npos);
  const auto rec = nlohmann::json::parse(r.output.substr(at, r.output.find('\n', at) - at));
  for (const char* mode : {"fp32", "fp32+ckpt", "fp32+ckpt-all", "bf16", "bf16+ckpt", "bf16+ckpt-all"}) {
    INFO(mode);
    const auto& ours = rec.at("modes").at(mode).at("ours");
    CHECK(ours.at("step_s").get<double>() > 0);
    CHECK(ours.at("peak_rss").get<int64_t>() > ours.at("base_rss").get<int64_t>());
  }
  CHECK_THAT(r.output, Contains("+memory MB"));
}

TEST_CASE("LoRA on the demo: the loss falls, checkpoints hold PEFT adapters, resume is exact, export merges",
          "[cli][train][lora]") {
  const std::string base = test::fresh_dir("train_cli_lora_" + std::to_string(::getpid()));
  // The base: a briefly trained full model, exported as a Hugging Face directory.
  auto r = test::run_command(train_cmd(base + "/full", "--set train.max_steps=4"));
  REQUIRE(r.exit_code == 0);
  const std::string base_model = base + "/full/final";
  const std::string lora = " --set model.weights=" + test::shell_quote(base_model) +
                           " --set lora.r=8 --set lora.alpha=16 --set train.lr=5e-3 --set train.max_steps=12"
                           " --set train.save_every=4";
  r = test::run_command(train_cmd(base + "/straight", lora));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("LoRA: rank 8"));
  const auto m = metrics(base + "/straight");
  REQUIRE(m.size() == 12);
  CHECK(m.back().at("loss").get<double>() < m.front().at("loss").get<double>());
  // Checkpoints hold the adapter (PEFT layout) and no copy of the base weights.
  for (const auto& dir : {base + "/straight/checkpoint-12", base + "/straight/final"}) {
    INFO(dir);
    CHECK(stdfs::exists(dir + "/adapter_config.json"));
    CHECK(stdfs::exists(dir + "/adapter_model.safetensors"));
    CHECK_FALSE(stdfs::exists(dir + "/model.safetensors"));
  }
  std::ifstream cfg_in(base + "/straight/final/adapter_config.json");
  auto cfg = nlohmann::json::parse(cfg_in);
  CHECK(cfg["r"] == 8);
  CHECK(cfg["base_model_name_or_path"] == stdfs::absolute(base_model).lexically_normal().string());
  // Killed after step 6 and resumed from checkpoint-4: the same losses and adapter as the straight run.
  r = test::run_command("LLAVACOT_TEST_SIGKILL_AFTER_STEP=6 " + train_cmd(base + "/killed", lora));
  CHECK(r.exit_code != 0);
  r = test::run_command(train_cmd(base + "/killed", lora + " --resume auto"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto k = metrics(base + "/killed");
  REQUIRE(k.size() == 12);
  for (size_t i = 0; i < k.size(); ++i) CHECK(k[i].at("loss").get<double>() == m[i].at("loss").get<double>());
  CHECK(fs::read_file(base + "/killed/final/adapter_model.safetensors") ==
        fs::read_file(base + "/straight/final/adapter_model.safetensors"));
  // generate takes the adapter checkpoint as --model (the base found through the adapter config), and export
  // writes a merged plain model whose answers are the same.
  const auto image = [&] {
    for (const auto& e : stdfs::recursive_directory_iterator(demo_dir() + "/images"))
      if (e.path().extension() == ".png") return e.path().string();
    return std::string();
  }();
  auto gen = [&](const std::string& model, const std::string& out) {
    return test::run_command("(" + test::cli() + " generate --model " + test::shell_quote(model) + " --image " +
                             test::shell_quote(image) + " --prompt 'How many shapes?' --set decode.max_new_tokens=16"
                             " --set run.threads=1 > " + test::shell_quote(base + "/" + out) + ")");
  };
  r = gen(base + "/straight/final", "adapter.txt");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = test::run_command(test::cli() + " export --checkpoint " + test::shell_quote(base + "/straight/final") + " --out " +
                        test::shell_quote(base + "/merged") + " --dtype fp32");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("merged"));
  CHECK_FALSE(stdfs::exists(base + "/merged/adapter_config.json"));
  REQUIRE(gen(base + "/merged", "merged.txt").exit_code == 0);
  CHECK(fs::read_file(base + "/adapter.txt") == fs::read_file(base + "/merged.txt"));
  CHECK(fs::read_file(base + "/adapter.txt").size() > 1);
}

TEST_CASE("pretrain-vision learns the demo's masks, writes a model train starts from, and names a broken mask",
          "[cli][train][vision_pretrain]") {
  const std::string dir = test::fresh_dir("pretrain_vision_cli");
  const std::string demo = demo_dir();
  auto cmd = [&](const std::string& listing, const std::string& run, int steps) {
    return test::cli() + " pretrain-vision --config " + test::shell_quote(test::source_path("configs/train/demo-vision.yaml")) +
           " --set vision_pretrain.file=" + test::shell_quote(listing) + " --set model.tokenizer=" +
           test::shell_quote(demo + "/tokenizer.json") + " --set model.preset=tiny --set run.threads=1" +
           " --set train.batch_size=8 --set train.log_every=5 --set train.warmup_steps=5 --set train.max_steps=" +
           std::to_string(steps) + " --set run.output_dir=" + test::shell_quote(run);
  };
  const std::string run = dir + "/vision";
  auto r = test::run_command(cmd(demo + "/vision.jsonl", run, 60));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("pretrained: 60 steps"));
  const auto m = metrics(run);
  REQUIRE(m.size() == 12);
  for (const char* key : {"step", "loss", "patch_accuracy", "object_patch_accuracy", "lr", "grad_norm", "elapsed_s"})
    CHECK(m.back().contains(key));
  const double first = m.front().at("loss").get<double>(), last = m.back().at("loss").get<double>();
  INFO("loss over steps 1-5 " << first << ", over steps 56-60 " << last);
  CHECK(last < 0.5 * first);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) CHECK(stdfs::exists(run + "/final/" + f));
  // A whole model: the vision encoder and the text side as initialised.
  std::set<std::string> names;
  for (const auto& [name, t] : safetensors::load_all(run + "/final/model.safetensors")) names.insert(name);
  CHECK(names.count("vision_model.patch_embedding.weight") == 1);
  CHECK(names.count("language_model.lm_head.weight") == 1);
  CHECK(names.count("multi_modal_projector.weight") == 1);

  // train starts from it (model.weights) with the encoder frozen, as demo.yaml does: the trained model's vision
  // weights are the pretrained ones exactly, while its text weights moved.
  const std::string trained = dir + "/trained";
  r = test::run_command(train_cmd(trained, "--set train.max_steps=3 --set train.freeze=[vision_tower] --set model.weights=" +
                                               test::shell_quote(run + "/final")));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("trained: 3 steps"));
  std::map<std::string, at::Tensor> pretrained;
  for (auto& [name, t] : safetensors::load_all(run + "/final/model.safetensors")) pretrained[name] = t;
  int vision_equal = 0, text_changed = 0;
  for (auto& [name, t] : safetensors::load_all(trained + "/final/model.safetensors")) {
    REQUIRE(pretrained.count(name) == 1);
    const bool equal = at::equal(t, pretrained.at(name));
    if (name.rfind("vision_model.", 0) == 0) {
      INFO(name);
      CHECK(equal);
      vision_equal += equal;
    } else if (name.rfind("language_model.", 0) == 0) {
      text_changed += !equal;
    }
  }
  CHECK(vision_equal > 10);
  CHECK(text_changed > 10);

  // A finished run directory is not overwritten.
  r = test::run_command(cmd(demo + "/vision.jsonl", run, 60));
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Contains("already holds a finished pretraining"));

  // A colour image given as a mask stops the run with the file named.
  const std::string listing = dir + "/broken.jsonl";
  const std::string image = train::read_mask_listing(demo + "/vision.jsonl").front().image;
  fs::write_file_atomic(listing, nlohmann::json{{"image", image}, {"mask", image}}.dump() + "\n");
  r = test::run_command(cmd(listing, dir + "/broken", 2));
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Contains(image) && Contains("one 8-bit channel"));
}
