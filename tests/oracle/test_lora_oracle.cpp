// LoRA against the peft package: our adapter files loaded by PeftModel onto transformers' model of the same base
// weights give our logits, and an adapter peft makes and saves loads in ours with its logits (fp32).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>

#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/lora.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;

namespace {

model::MllamaInputs oracle_batch(const model::MllamaConfig& cfg) {
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  std::vector<int64_t> a{img, bos}, b{bos, 3, img};
  for (auto t : test::random_tokens(cfg, 9, 41)) a.push_back(t);
  for (auto t : test::random_tokens(cfg, 6, 42)) b.push_back(t);
  return test::make_batch(cfg, {{a, {2}}, {b, {1}}}, 43);
}

void save_inputs(const model::MllamaInputs& in, const std::string& path) {
  safetensors::NamedTensors t{{"input_ids", in.input_ids},
                              {"attention_mask", in.attention_mask},
                              {"pixel_values", in.pixel_values.contiguous()},
                              {"aspect_ratio_ids", in.aspect_ratio_ids},
                              {"aspect_ratio_mask", in.aspect_ratio_mask},
                              {"cross_attention_mask", in.cross_attention_mask}};
  safetensors::save(path, t);
}

// Logits at real (non-padding) positions.
torch::Tensor real(const torch::Tensor& logits, const torch::Tensor& mask) { return logits.index({mask.to(torch::kBool)}); }

void require_ok(const test::CommandResult& r) {
  INFO(r.output.substr(r.output.size() > 4000 ? r.output.size() - 4000 : 0));
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("peft loads our adapter and gives our logits; peft's adapter loads in ours", "[oracle][lora]") {
  const auto dir = test::fresh_dir("lora_oracle_" + std::to_string(::getpid()));
  // The base: a random tiny model saved as a Hugging Face directory.
  auto base = test::random_tiny_model(12);
  model::save_pretrained(base, dir + "/base", {torch::kFloat32});
  auto in = oracle_batch(base->config);
  save_inputs(in, dir + "/inputs.safetensors");

  // Ours -> peft.
  auto ours = model::load_pretrained(dir + "/base", torch::kFloat32);
  ours->runtime.vision_taps = model::VisionTaps::kLayerOutputs;  // as the pinned transformers release taps them
  model::LoraSettings s;
  s.r = 4;
  s.alpha = 8;
  s.dropout = 0;
  s.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "multi_modal_projector"};
  model::apply_lora(ours, s, 3);
  {
    torch::NoGradGuard no_grad;
    auto gen = at::detail::createCPUGenerator(8);
    for (auto& [name, t] : model::named_adapters(ours))
      if (name.find("lora_B") != std::string::npos) t.normal_(0, 0.05, gen);
  }
  model::save_adapter(ours, s, dir + "/ours");
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/peft_oracle.py", "run " + test::shell_quote(dir + "/base") + " " + test::shell_quote(dir + "/ours") + " " +
                                         test::shell_quote(dir + "/inputs.safetensors") + " " +
                                         test::shell_quote(dir + "/theirs.safetensors"))));
  torch::NoGradGuard no_grad;
  ours->eval();
  auto want = safetensors::load_all(dir + "/theirs.safetensors").at(0).second;
  auto got = ours->forward(in).logits;
  const double diff = test::max_abs_diff(real(got, in.attention_mask), real(want, in.attention_mask));
  INFO("max |ours - peft| = " << diff);
  CHECK(diff < 1e-4);
  // The adapter matters: without it the logits differ.
  auto plain = model::load_pretrained(dir + "/base", torch::kFloat32);
  plain->runtime.vision_taps = model::VisionTaps::kLayerOutputs;
  CHECK(test::max_abs_diff(real(plain->forward(in).logits, in.attention_mask), real(want, in.attention_mask)) > 1e-3);

  // peft -> ours.
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/peft_oracle.py", "make " + test::shell_quote(dir + "/base") + " " + test::shell_quote(dir + "/peft") + " 5")));
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/peft_oracle.py", "run " + test::shell_quote(dir + "/base") + " " + test::shell_quote(dir + "/peft") + " " +
                                         test::shell_quote(dir + "/inputs.safetensors") + " " +
                                         test::shell_quote(dir + "/theirs2.safetensors"))));
  auto loaded = model::load_pretrained(dir + "/base", torch::kFloat32);
  loaded->runtime.vision_taps = model::VisionTaps::kLayerOutputs;
  const auto settings = model::load_adapter(loaded, dir + "/peft");
  CHECK(settings.r == 4);
  CHECK(model::named_adapters(loaded).size() > 0);
  auto want2 = safetensors::load_all(dir + "/theirs2.safetensors").at(0).second;
  const double diff2 = test::max_abs_diff(real(loaded->forward(in).logits, in.attention_mask), real(want2, in.attention_mask));
  INFO("max |ours - peft| with peft's adapter = " << diff2);
  CHECK(diff2 < 1e-4);
}
