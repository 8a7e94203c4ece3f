// LoRA adapters: a fresh adapter (B = 0) leaves the model exactly as it was; training moves adapters only;
// merging gives the logits of base + adapters; the PEFT files round-trip; target patterns and refusals.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/io/safetensors.h"
#include "llavacot/model/lora.h"
#include "llavacot/util/error.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {

model::MllamaInputs lora_batch(const model::MllamaConfig& cfg, uint64_t seed) {
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  std::vector<int64_t> a{img, bos}, b{bos, 3, img};
  for (auto t : test::random_tokens(cfg, 9, seed)) a.push_back(t);
  for (auto t : test::random_tokens(cfg, 6, seed + 1)) b.push_back(t);
  auto in = test::make_batch(cfg, {{a, {2}}, {b, {1}}}, seed + 2);
  in.labels = in.input_ids.clone().masked_fill(in.attention_mask == 0, -100).masked_fill(in.input_ids == img, -100);
  return in;
}

model::LoraSettings wide_settings() {
  model::LoraSettings s;
  s.r = 4;
  s.alpha = 8;
  s.dropout = 0;
  // text self- and cross-attention, the vision MLPs, the projector (a regex over whole paths)
  s.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "multi_modal_projector"};
  return s;
}

void randomize_b(model::MllamaForConditionalGeneration& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& [name, t] : model::named_adapters(m))
    if (name.find("lora_B") != std::string::npos) t.normal_(0, 0.05, gen);
}

}  // namespace

TEST_CASE("a fresh adapter (B = 0) leaves the model exactly as the base", "[lora]") {
  auto m = test::random_tiny_model(5);
  auto in = lora_batch(m->config, 11);
  torch::NoGradGuard no_grad;
  const auto base = m->forward(in).logits.clone();
  const auto targets = model::apply_lora(m, wide_settings(), 3);
  CHECK(targets.size() > 10);
  bool cross = false, vision = false, projector = false;
  for (const auto& t : targets) {
    cross = cross || t.find("cross_attn") != std::string::npos;
    vision = vision || t.rfind("vision_model.", 0) == 0;
    projector = projector || t == "multi_modal_projector";
  }
  CHECK((cross && vision && projector));
  CHECK(torch::equal(m->forward(in).logits, base));
  // The base weights list is unchanged; the adapters are listed apart, A random and B zero.
  for (const auto& [name, t] : m->named_weights()) CHECK(name.find("lora_") == std::string::npos);
  auto adapters = model::named_adapters(m);
  REQUIRE(adapters.size() == 2 * targets.size());
  CHECK(adapters[0].first == targets[0] + ".lora_A.weight");
  CHECK(adapters[0].second.abs().sum().item<double>() > 0);
  CHECK(adapters[1].second.abs().sum().item<double>() == 0);
  // A is drawn as PEFT draws it: U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(adapters[0].second.size(1)));
  CHECK(adapters[0].second.abs().max().item<double>() <= bound);
}

TEST_CASE("training steps move the adapters only; merging gives base + adapter logits", "[lora]") {
  auto m = test::random_tiny_model(6);
  auto in = lora_batch(m->config, 21);
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, t] : m->named_weights()) before[name] = t.detach().clone();
  auto s = wide_settings();
  s.dropout = 0.1;
  model::apply_lora(m, s, 4);
  std::vector<torch::Tensor> params;
  for (auto& [name, t] : m->named_weights()) t.set_requires_grad(false);
  for (auto& [name, t] : model::named_adapters(m)) {
    t.set_requires_grad(true);
    params.push_back(t);
  }
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-2));
  m->train();
  double first = 0, last = 0;
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    auto loss = m->forward(in).loss;
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  m->eval();
  CHECK(last < first);
  for (const auto& [name, t] : m->named_weights()) CHECK(torch::equal(t, before.at(name)));
  int64_t moved = 0;
  for (const auto& [name, t] : model::named_adapters(m))
    if (name.find("lora_B") != std::string::npos) moved += t.abs().sum().item<double>() > 0;
  CHECK(moved == static_cast<int64_t>(model::named_adapters(m).size() / 2));
  torch::NoGradGuard no_grad;
  const auto with_adapters = m->forward(in).logits.clone();
  CHECK(model::merge_lora(m) > 0);
  CHECK(model::named_adapters(m).empty());
  // fp32: equal up to rounding, 1e-5 relative to the logits' size (W x + s B A x and (W + s B A) x round differently).
  const double scale = std::max(1.0, with_adapters.abs().max().item<double>());
  const double diff = test::max_abs_diff(m->forward(in).logits, with_adapters);
  INFO("max |merged - adapters| = " << diff << ", logits up to " << scale);
  CHECK(diff < 1e-5 * scale);
}

TEST_CASE("adapters round-trip through the PEFT files; configs PEFT writes are read", "[lora]") {
  const auto dir = test::fresh_dir("lora_files_" + std::to_string(::getpid()));
  auto m = test::random_tiny_model(7);
  auto s = wide_settings();
  s.base_model_name_or_path = "/models/base";
  model::apply_lora(m, s, 5);
  randomize_b(m, 9);
  model::save_adapter(m, s, dir + "/adapter");
  auto cfg = nlohmann::json::parse(std::ifstream(dir + "/adapter/adapter_config.json"));
  CHECK(cfg["peft_type"] == "LORA");
  CHECK(cfg["r"] == 4);
  CHECK(cfg["lora_alpha"] == 8);
  CHECK(cfg["bias"] == "none");
  CHECK(cfg["base_model_name_or_path"] == "/models/base");
  CHECK(std::find(cfg["target_modules"].begin(), cfg["target_modules"].end(), "model.language_model.layers.0.self_attn.q_proj") !=
        cfg["target_modules"].end());
  auto names = safetensors::File::open(dir + "/adapter/adapter_model.safetensors").names();
  CHECK(std::find(names.begin(), names.end(), "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight") !=
        names.end());
  CHECK(std::find(names.begin(), names.end(), "base_model.model.model.multi_modal_projector.lora_B.weight") != names.end());

  auto fresh = test::random_tiny_model(7);
  const auto loaded = model::load_adapter(fresh, dir + "/adapter");
  CHECK(loaded.r == 4);
  auto in = lora_batch(m->config, 31);
  torch::NoGradGuard no_grad;
  CHECK(torch::equal(fresh->forward(in).logits, m->forward(in).logits));

  // A config as PEFT may write it: target_modules as one regular expression string.
  std::ofstream(dir + "/adapter/adapter_config.json")
      << R"j({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "bias": "none",
            "target_modules": ".*(q_proj|k_proj|v_proj|o_proj|fc1|fc2|multi_modal_projector)", "use_dora": false})j";
  auto again = test::random_tiny_model(7);
  model::load_adapter(again, dir + "/adapter");
  CHECK(torch::equal(again->forward(in).logits, m->forward(in).logits));

  // Refusals name the problem.
  std::ofstream(dir + "/adapter/adapter_config.json")
      << R"j({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "use_dora": true})j";
  CHECK_THROWS_AS(model::load_adapter(again, dir + "/adapter"), FormatError);
  auto t = test::random_tiny_model(1);
  auto bad = wide_settings();
  bad.target_modules = {"no_such_proj"};
  CHECK_THROWS_WITH(model::apply_lora(t, bad, 0), Contains("matches no linear projection"));
  bad.target_modules = {"lm_head"};
  CHECK_THROWS_WITH(model::apply_lora(t, bad, 0), Contains("output projection"));
  bad.target_modules = {"language_model\\..*(q|v)_proj"};
  const auto some = model::lora_targets(t, bad.target_modules);
  for (const auto& name : some) CHECK(name.rfind("language_model.", 0) == 0);
  CHECK_FALSE(some.empty());
}
