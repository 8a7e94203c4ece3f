// The mllama model on a CUDA device: the same logits as on the CPU (fp32 and bf16), and cached decoding
// equal to the full forward pass. Skips visibly where no device is present.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "llavacot/model/checkpoint.h"
#include "llavacot/model/mllama.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;

namespace {

model::MllamaInputs to_device(model::MllamaInputs in, const torch::Device& d) {
  for (auto* t : {&in.input_ids, &in.attention_mask, &in.position_ids, &in.pixel_values, &in.aspect_ratio_ids,
                  &in.aspect_ratio_mask, &in.cross_attention_mask})
    if (t->defined()) *t = t->to(d);
  return in;
}

}  // namespace

TEST_CASE("the model on CUDA gives the CPU's logits and cached decoding equals the full pass", "[gpu][model]") {
  if (!torch::cuda::is_available()) {
    WARN("SKIPPED: no CUDA device present");
    return;
  }
  auto cfg = model::load_preset(test::source_path("configs/models/tiny.json"));
  model::MllamaForConditionalGeneration cpu(cfg);
  model::init_weights(cpu, 3);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : cpu->named_weights())
      if (name.find("gate") != std::string::npos) p.fill_(0.7);
  }
  auto dir = test::fresh_dir("gpu_model");
  model::SaveOptions save;
  save.dtype = torch::kFloat32;
  model::save_pretrained(cpu, dir, save);
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto tail = test::random_tokens(cfg, 9, 4);
  std::vector<int64_t> row{img, bos};
  row.insert(row.end(), tail.begin(), tail.end());
  auto in = test::make_batch(cfg, {{row, {6}}}, 5);
  torch::NoGradGuard no_grad;
  auto ref = cpu->forward(in).logits;
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    INFO((dtype == torch::kFloat32 ? "fp32" : "bf16"));
    auto gpu = model::load_pretrained(dir, dtype, torch::kCUDA);
    auto logits = gpu->forward(to_device(in, torch::kCUDA)).logits.to(torch::kCPU, torch::kFloat32);
    const double scale = ref.abs().max().item<double>();
    CHECK(test::max_abs_diff(logits, ref) < (dtype == torch::kFloat32 ? 1e-3 : 0.05 * scale + 1e-2));
    model::GenerationCache cache;
    auto first = to_device(in, torch::kCUDA);
    const int64_t s = in.input_ids.size(1), prefix = 4;
    first.input_ids = first.input_ids.narrow(1, 0, prefix);
    first.attention_mask = first.attention_mask.narrow(1, 0, prefix);
    first.position_ids = torch::Tensor();
    first.cross_attention_mask = first.cross_attention_mask.narrow(1, 0, prefix);
    gpu->forward(first, &cache);
    auto full = gpu->forward(to_device(in, torch::kCUDA)).logits.to(torch::kCPU, torch::kFloat32);
    for (int64_t t = prefix; t < s; ++t) {
      model::MllamaInputs step;
      step.input_ids = in.input_ids.narrow(1, t, 1).to(torch::kCUDA);
      auto got = gpu->forward(step, &cache).logits.to(torch::kCPU, torch::kFloat32);
      CHECK(test::max_abs_diff(got, full.narrow(1, t, 1)) < (dtype == torch::kFloat32 ? 1e-3 : 0.05 * scale + 1e-2));
    }
  }
}
