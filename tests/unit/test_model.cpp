#include <ATen/autocast_mode.h>
// The mllama modules on their own: names and shapes without allocation, cached decoding, padding,
// gates, cache forking, checkpoint round trips and errors, attention paths.
#include <catch2/catch.hpp>

#include <filesystem>

#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/mllama.h"
#include "llavacot/util/error.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;
using model::MllamaInputs;

namespace {

[[maybe_unused]] model::MllamaConfig tiny() { return model::load_preset(test::source_path("configs/models/tiny.json")); }

model::MllamaForConditionalGeneration random_tiny(uint64_t seed, torch::ScalarType dtype = torch::kFloat32) {
  return test::random_tiny_model(seed, dtype);
}

std::vector<int64_t> cat_ids(std::vector<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

MllamaInputs image_batch(const model::MllamaConfig& cfg, uint64_t seed) {
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  return test::make_batch(cfg,
                          {{cat_ids({{img, bos}, test::random_tokens(cfg, 11, seed)}), {6}},
                           {cat_ids({{bos, 3}, {img}, test::random_tokens(cfg, 5, seed + 1)}), {2}}},
                          seed + 2);
}

torch::Tensor real(const torch::Tensor& logits, const torch::Tensor& mask) { return logits.index({mask.to(torch::kBool)}); }

}  // namespace

TEST_CASE("the 11B model's parameter names and shapes equal the checkpoint table, without allocating", "[model]") {
  auto cfg = model::load_preset(test::source_path("configs/models/llama-3.2-11b-vision.json"));
  model::MllamaForConditionalGeneration m(cfg, torch::TensorOptions().device(torch::kMeta).dtype(torch::kBFloat16));
  auto weights = m->named_weights();
  auto table = model::parameter_table(cfg);
  REQUIRE(weights.size() == 906);
  REQUIRE(table.size() == 906);
  std::map<std::string, std::vector<int64_t>> ours, expected;
  int64_t total = 0;
  for (auto& [name, p] : weights) {
    CHECK(p.device().is_meta());
    ours[name] = p.sizes().vec();
    total += p.numel();
  }
  for (const auto& p : table) expected[p.name] = p.shape;
  CHECK(ours == expected);
  CHECK(total == 10670220835LL);
  CHECK(m->named_buffers().size() == 0);
}

TEST_CASE("cached decoding reproduces the full forward pass", "[model]") {
  auto m = random_tiny(1);
  auto cfg = m->config;
  auto in = image_batch(cfg, 10);
  torch::NoGradGuard no_grad;
  auto full = m->forward(in).logits;
  const int64_t s = in.input_ids.size(1), prefix = 5;
  model::GenerationCache cache;
  MllamaInputs first = in;
  first.input_ids = in.input_ids.narrow(1, 0, prefix);
  first.attention_mask = in.attention_mask.narrow(1, 0, prefix);
  first.position_ids = torch::Tensor();
  first.cross_attention_mask = in.cross_attention_mask.narrow(1, 0, prefix);
  auto out = m->forward(first, &cache).logits;
  CHECK(test::max_abs_diff(real(out, first.attention_mask), real(full.narrow(1, 0, prefix), first.attention_mask)) < 1e-4);
  for (int64_t t = prefix; t < s; ++t) {
    MllamaInputs step;
    step.input_ids = in.input_ids.narrow(1, t, 1);
    // Where a token sees what the one before it saw, no mask is given: the cache's last row is inherited.
    const auto row = in.cross_attention_mask.narrow(1, t, 1);
    if (!row.equal(in.cross_attention_mask.narrow(1, t - 1, 1))) step.cross_attention_mask = row;
    auto logits = m->forward(step, &cache).logits;
    INFO("step " << t);
    CHECK(test::max_abs_diff(logits, full.narrow(1, t, 1)) < 1e-4);
  }
  CHECK(cache.self.length() == s);
  CHECK(cache.cross.entries() == 2);
}

TEST_CASE("padding rows in a batch do not change the other rows", "[model]") {
  auto m = random_tiny(2);
  auto cfg = m->config;
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  std::vector<int64_t> a = cat_ids({{img, bos}, test::random_tokens(cfg, 6, 5)});
  std::vector<int64_t> b = cat_ids({{img, bos}, test::random_tokens(cfg, 12, 6)});
  torch::NoGradGuard no_grad;
  auto alone = m->forward(test::make_batch(cfg, {{a, {3}}}, 7)).logits;
  auto both_in = test::make_batch(cfg, {{a, {3}}, {b, {4}}}, 7);  // same seed: row 0 gets the same pixels
  auto both = m->forward(both_in).logits;
  const auto pad = both_in.input_ids.size(1) - static_cast<int64_t>(a.size());
  CHECK(test::max_abs_diff(both[0].narrow(0, pad, static_cast<int64_t>(a.size())), alone[0]) < 1e-4);
}

TEST_CASE("zero cross-attention gates make the image irrelevant", "[model]") {
  auto m = random_tiny(3);
  auto cfg = m->config;
  auto x = image_batch(cfg, 20), y = image_batch(cfg, 20);
  y.pixel_values = torch::randn_like(y.pixel_values);
  torch::NoGradGuard no_grad;
  CHECK(test::max_abs_diff(m->forward(x).logits, m->forward(y).logits) > 1e-3);  // the image matters ...
  for (auto& [name, p] : m->named_weights())
    if (name.find("cross_attn_attn_gate") != std::string::npos || name.find("cross_attn_mlp_gate") != std::string::npos)
      p.zero_();
  CHECK(test::max_abs_diff(m->forward(x).logits, m->forward(y).logits) == 0.0);  // ... until the gates close
}

TEST_CASE("text-only prompts skip the cross-attention layers", "[model]") {
  auto m = random_tiny(4);
  auto cfg = m->config;
  auto in = test::make_batch(cfg, {{cat_ids({{cfg.text.bos_token_id}, test::random_tokens(cfg, 9, 8)}), {}}}, 1);
  torch::NoGradGuard no_grad;
  auto before = m->forward(in).logits;
  for (auto& [name, p] : m->named_weights())
    if (name.find("cross_attn") != std::string::npos) p.fill_(123.0);
  CHECK(test::max_abs_diff(m->forward(in).logits, before) == 0.0);
}

TEST_CASE("Meta's row masking zeroes the cross-attention of rows that see no image", "[model]") {
  auto m = random_tiny(5);
  auto cfg = m->config;
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto head = test::random_tokens(cfg, 4, 9);
  auto in = test::make_batch(cfg, {{cat_ids({{bos}, head, {img}, test::random_tokens(cfg, 4, 10)}), {2}}}, 11);
  auto text_only = test::make_batch(cfg, {{cat_ids({{bos}, head}), {}}}, 11);
  torch::NoGradGuard no_grad;
  auto hf = m->forward(in).logits.narrow(1, 0, 5);
  m->runtime.row_masking = model::RowMasking::kMeta;
  auto meta = m->forward(in).logits.narrow(1, 0, 5);
  auto plain = m->forward(text_only).logits;
  // Meta: rows before the image equal a text-only prompt, up to fp32 rounding (GEMM blocking differs with the
  // sequence length: 1.1e-5 seen on an AVX2-only CPU), far below the Hugging Face rows' difference.
  CHECK(test::max_abs_diff(meta, plain) < 1e-4);
  CHECK(test::max_abs_diff(hf, plain) > 1e-3);    // Hugging Face: they average the vision tokens
}

TEST_CASE("forked cache rows continue like separate prompts and share the image K/V", "[model]") {
  auto m = random_tiny(6);
  auto cfg = m->config;
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto prompt = test::make_batch(cfg, {{cat_ids({{img, bos}, test::random_tokens(cfg, 6, 12)}), {5}}}, 13);
  torch::NoGradGuard no_grad;
  model::GenerationCache shared;
  m->forward(prompt, &shared);
  const auto cross_bytes = shared.cross.bytes();
  shared.select_rows({0, 0, 0});
  CHECK(shared.rows() == 3);
  CHECK(shared.cross.entries() == 1);
  CHECK(shared.cross.bytes() == cross_bytes);
  std::vector<int64_t> next{7, 8, 9}, then{20, 21, 22};
  MllamaInputs step;
  step.input_ids = torch::tensor(next, torch::kInt64).view({3, 1});
  m->forward(step, &shared);
  shared.select_rows({2, 0, 1});  // reorder, as beam search does
  step.input_ids = torch::tensor(then, torch::kInt64).view({3, 1});
  auto forked = m->forward(step, &shared).logits;
  const std::vector<size_t> origin{2, 0, 1};
  for (size_t r = 0; r < 3; ++r) {
    model::GenerationCache own;
    m->forward(prompt, &own);
    MllamaInputs s1;
    s1.input_ids = torch::tensor({next[origin[r]]}, torch::kInt64).view({1, 1});
    m->forward(s1, &own);
    s1.input_ids = torch::tensor({then[r]}, torch::kInt64).view({1, 1});
    auto alone = m->forward(s1, &own).logits;
    INFO("row " << r);
    CHECK(test::max_abs_diff(forked[static_cast<int64_t>(r)], alone[0]) < 1e-4);
  }
}

TEST_CASE("fused and math attention agree, and bf16 stays close to fp32", "[model]") {
  auto m = random_tiny(7);
  auto in = image_batch(m->config, 30);
  torch::NoGradGuard no_grad;
  auto fused = m->forward(in).logits;
  m->runtime.backend = model::AttentionBackend::kMath;
  auto math = m->forward(in).logits;
  CHECK(test::max_abs_diff(real(fused, in.attention_mask), real(math, in.attention_mask)) < 1e-4);
  auto dir = test::fresh_dir("model_bf16");
  model::save_pretrained(m, dir);  // bf16 on disk
  for (auto backend : {model::AttentionBackend::kFused, model::AttentionBackend::kMath}) {
    auto b = model::load_pretrained(dir, torch::kBFloat16);
    b->runtime.backend = backend;
    auto logits = b->forward(in).logits.to(torch::kFloat32);
    const double scale = real(fused, in.attention_mask).abs().max().item<double>();
    INFO("bf16 " << model::attention_backend_name(backend) << " scale " << scale);
    CHECK(test::max_abs_diff(real(logits, in.attention_mask), real(fused, in.attention_mask)) < 0.1 * scale);
  }
}

TEST_CASE("save and load round-trip bit-exactly, single file and sharded", "[model]") {
  auto m = random_tiny(8);
  for (uint64_t shard : {uint64_t(5) << 30, uint64_t(200) * 1024}) {
    INFO("shard bytes " << shard);
    auto dir = test::fresh_dir("model_roundtrip_" + std::to_string(shard));
    model::SaveOptions options;
    options.dtype = torch::kFloat32;
    options.max_shard_bytes = shard;
    model::save_pretrained(m, dir, options);
    CHECK(std::filesystem::exists(dir + (shard > 1000000 ? "/model.safetensors" : "/model.safetensors.index.json")));
    auto back = model::load_pretrained(dir, torch::kFloat32);
    auto a = m->named_weights(), b = back->named_weights();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
    CHECK(model::read_config(dir).text.hidden_size == m->config.text.hidden_size);
  }
  // A bf16 checkpoint loads into an fp32 model as the bf16-rounded weights (dtype conversion on load).
  auto bf16_dir = test::fresh_dir("model_roundtrip_bf16");
  model::save_pretrained(m, bf16_dir);
  CHECK(model::read_config(bf16_dir).torch_dtype == "bfloat16");
  auto widened = model::load_pretrained(bf16_dir, torch::kFloat32);
  auto a = m->named_weights(), c = widened->named_weights();
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(c[i].second.scalar_type() == torch::kFloat32);
    CHECK(torch::equal(c[i].second, a[i].second.to(torch::kBFloat16).to(torch::kFloat32)));
  }
  // Saving into the same folder with another layout leaves no stale weight files behind.
  auto dir = test::fresh_dir("model_relayout");
  model::SaveOptions sharded;
  sharded.max_shard_bytes = 100 * 1024;
  model::save_pretrained(m, dir, sharded);
  model::save_pretrained(m, dir);
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.path().extension() == ".safetensors" ? 1 : 0;
  CHECK(files == 1);
  CHECK_FALSE(std::filesystem::exists(dir + "/model.safetensors.index.json"));
}

TEST_CASE("checkpoint keys in the transformers >= 4.52 layout load", "[model]") {
  CHECK(model::canonical_key("model.language_model.layers.0.mlp.up_proj.weight") ==
        "language_model.model.layers.0.mlp.up_proj.weight");
  CHECK(model::canonical_key("model.vision_model.class_embedding") == "vision_model.class_embedding");
  CHECK(model::canonical_key("model.multi_modal_projector.bias") == "multi_modal_projector.bias");
  CHECK(model::canonical_key("lm_head.weight") == "language_model.lm_head.weight");
  CHECK(model::canonical_key("language_model.lm_head.weight") == "language_model.lm_head.weight");
  auto m = random_tiny(9);
  safetensors::NamedTensors renamed;
  for (auto& [name, p] : m->named_weights()) {
    std::string key = name;
    if (key.rfind("language_model.model.", 0) == 0) key = "model.language_model." + key.substr(21);
    else if (key.rfind("language_model.lm_head", 0) == 0) key = key.substr(15);
    else key = "model." + key;
    renamed.emplace_back(key, p.detach());
  }
  auto dir = test::fresh_dir("model_new_keys");
  safetensors::save(dir + "/model.safetensors", renamed);
  model::MllamaForConditionalGeneration back(m->config);
  auto report = model::load_weights(back, dir);
  CHECK(report.loaded == static_cast<int64_t>(renamed.size()));
  auto a = m->named_weights(), b = back->named_weights();
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
}

TEST_CASE("a checkpoint that does not fit names every missing, unexpected and mis-shaped key at once", "[model]") {
  auto m = random_tiny(10);
  safetensors::NamedTensors tensors;
  for (auto& [name, p] : m->named_weights()) {
    if (name == "language_model.model.norm.weight") continue;  // missing
    if (name == "multi_modal_projector.bias")
      tensors.emplace_back(name, torch::zeros({p.size(0) + 1}));  // wrong shape
    else if (name == "vision_model.class_embedding")
      tensors.emplace_back(name, torch::zeros(p.sizes(), torch::kInt64));  // not a floating type
    else
      tensors.emplace_back(name, p.detach());
  }
  tensors.emplace_back("vision_model.extra.weight", torch::zeros({2}));  // unexpected
  auto dir = test::fresh_dir("model_bad_ckpt");
  safetensors::save(dir + "/model.safetensors", tensors);
  model::MllamaForConditionalGeneration back(m->config);
  try {
    model::load_weights(back, dir);
    FAIL("expected a FormatError");
  } catch (const FormatError& e) {
    std::string msg = e.what();
    CHECK(msg.find("language_model.model.norm.weight") != std::string::npos);
    CHECK(msg.find("vision_model.extra.weight") != std::string::npos);
    CHECK(msg.find("multi_modal_projector.bias: checkpoint [65] vs model [64]") != std::string::npos);
    CHECK(msg.find("vision_model.class_embedding: checkpoint dtype I64 is not a floating type") != std::string::npos);
  }
  model::LoadOptions lenient;
  lenient.strict = false;
  auto report = model::load_weights(back, dir, lenient);
  CHECK(report.missing.size() == 1);
  CHECK(report.unexpected.size() == 1);
  CHECK(report.mismatched.size() == 2);
  CHECK(report.loaded == static_cast<int64_t>(m->named_weights().size()) - 3);
}

TEST_CASE("the cross-attention mask: rows that see no tile get a zero bias and multiplier 0", "[model]") {
  auto mask = torch::tensor({0, 0, 1, 1, 0, 1, 0, 0}, torch::kInt64).view({1, 4, 1, 2});  // [B, S, M, T]
  auto [additive, rows] = model::prepare_cross_attention_mask(mask, 3, torch::kFloat32);
  REQUIRE(additive.sizes() == torch::IntArrayRef({1, 1, 4, 6}));
  CHECK(rows.view({4}).equal(torch::tensor({0.f, 1.f, 1.f, 0.f})));
  const float min = std::numeric_limits<float>::lowest();
  CHECK(additive[0][0][0].abs().max().item<float>() == 0.0f);  // fully masked row: all zero
  CHECK(additive[0][0][1].equal(torch::zeros({6})));
  CHECK(additive[0][0][2].equal(torch::tensor({min, min, min, 0.f, 0.f, 0.f})));
}

TEST_CASE("the loss averages the shifted labels that are not ignored", "[model]") {
  auto logits = torch::randn({2, 4, 7});
  auto labels = torch::tensor({-100, 3, 5, 1, 2, -100, 6, -100}, torch::kInt64).view({2, 4});
  int64_t count = 0;
  auto loss = model::causal_lm_loss(logits, labels, &count);
  CHECK(count == 4);  // targets 3, 5, 1 (row 0) and 6 (row 1)
  auto lp = torch::log_softmax(logits, -1);
  double expected = -(lp[0][0][3] + lp[0][1][5] + lp[0][2][1] + lp[1][1][6]).item<double>() / 4;
  CHECK(loss.item<double>() == Approx(expected).epsilon(1e-6));
  // The gradient equals the one through log_softmax + nll_loss, in fp32 and for bf16 logits.
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto z = torch::randn({3, 5, 11}).to(dtype).requires_grad_(true);
    auto y = torch::randint(0, 11, {3, 5}, torch::kInt64);
    y[1][2] = model::kIgnoreIndex;
    model::causal_lm_loss(z, y).backward();
    auto z_ref = z.detach().to(torch::kFloat32).requires_grad_(true);
    auto shifted = torch::cat({y.narrow(1, 1, 4), torch::full({3, 1}, model::kIgnoreIndex, torch::kInt64)}, 1);
    torch::nll_loss(torch::log_softmax(z_ref.reshape({-1, 11}), -1), shifted.reshape({-1}), {}, at::Reduction::Mean,
                    model::kIgnoreIndex)
        .backward();
    CHECK(test::max_abs_diff(z.grad().to(torch::kFloat32), z_ref.grad()) < (dtype == torch::kFloat32 ? 1e-7 : 1e-3));
  }
  CHECK_THROWS_AS(model::causal_lm_loss(logits, torch::full({2, 4}, 7, torch::kInt64)), UsageError);
}

TEST_CASE("the fused vocabulary loss equals lm_head logits + causal_lm_loss, gradients included", "[model]") {
  const int64_t b = 3, s = 6, hid = 8, vocab = 37;
  auto y = torch::randint(0, vocab, {b, s}, torch::kInt64);
  y[0][0] = y[1][3] = y[2][4] = model::kIgnoreIndex;  // a prompt token, a gap, and the one before the last
  for (const double g : {1.0, 0.37}) {
    // chunk_elements 0: one block; 2 * vocab: two rows a block; vocab: one row a block (float32 accumulation).
    for (const int64_t chunk : {int64_t{0}, 2 * vocab, vocab}) {
      for (const bool frozen_weight : {false, true}) {
        auto h = torch::randn({b, s, hid}).requires_grad_(true);
        auto w = (torch::randn({vocab, hid}) * 0.3).requires_grad_(!frozen_weight);
        auto h_ref = h.detach().clone().requires_grad_(true);
        auto w_ref = w.detach().clone().requires_grad_(!frozen_weight);
        int64_t count = 0, count_ref = 0;
        auto loss = model::linear_cross_entropy(h, w, y, chunk, &count);
        auto ref = model::causal_lm_loss(torch::matmul(h_ref, w_ref.t()), y, &count_ref);
        INFO("g " << g << " chunk " << chunk << " frozen " << frozen_weight);
        CHECK(count == count_ref);
        CHECK(loss.item<double>() == Approx(ref.item<double>()).epsilon(1e-6));
        (loss * g).backward();
        (ref * g).backward();
        CHECK(test::max_abs_diff(h.grad(), h_ref.grad()) < 1e-6);
        CHECK(w.grad().defined() == !frozen_weight);
        if (!frozen_weight) CHECK(test::max_abs_diff(w.grad(), w_ref.grad()) < 1e-6);
      }
    }
  }
  {  // bf16 autocast: products in bf16 as the lm_head Linear would run them, gradients in the inputs' dtypes
    auto h = torch::randn({b, s, hid}).requires_grad_(true);
    auto w = (torch::randn({vocab, hid}) * 0.3).requires_grad_(true);
    auto ref = model::causal_lm_loss(torch::matmul(h, w.t()), y);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    auto loss = model::linear_cross_entropy(h, w, y);
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
    CHECK(loss.item<double>() == Approx(ref.item<double>()).epsilon(0.02));
    loss.backward();
    CHECK(h.grad().scalar_type() == torch::kFloat32);
    CHECK(w.grad().scalar_type() == torch::kFloat32);
    auto w_ref = w.detach().clone().requires_grad_(true);
    model::causal_lm_loss(torch::matmul(h.detach(), w_ref.t()), y).backward();
    CHECK(test::max_abs_diff(w.grad(), w_ref.grad()) < 0.02 * w_ref.grad().abs().max().item<double>());
  }
  {  // without grad mode only the loss is formed
    torch::NoGradGuard no_grad;
    auto h = torch::randn({b, s, hid}), w = torch::randn({vocab, hid});
    CHECK(model::linear_cross_entropy(h, w, y).item<double>() ==
          Approx(model::causal_lm_loss(torch::matmul(h, w.t()), y).item<double>()).epsilon(1e-6));
  }
  CHECK_THROWS_AS(model::linear_cross_entropy(torch::randn({b, s, hid}), torch::randn({vocab, hid}),
                                              torch::full({b, s}, vocab, torch::kInt64)),
                  UsageError);
  CHECK_THROWS_AS(model::linear_cross_entropy(torch::randn({b, s, hid}), torch::randn({vocab, hid + 1}), y), UsageError);
}

TEST_CASE("a loss_only forward gives the loss and gradients of the logits path", "[model]") {
  auto m = random_tiny(5);
  auto in = image_batch(m->config, 5);
  in.labels = in.input_ids.masked_fill((in.input_ids >= m->config.text.vocab_size).logical_or(in.attention_mask == 0),
                                       model::kIgnoreIndex);
  auto ref = m->forward(in).loss;
  ref.backward();
  std::map<std::string, torch::Tensor> grads;
  for (auto& [name, p] : m->named_weights()) {
    grads[name] = p.grad().clone();
    p.mutable_grad() = torch::Tensor();
  }
  in.loss_only = true;
  auto out = m->forward(in);
  CHECK_FALSE(out.logits.defined());
  CHECK(out.loss.item<double>() == Approx(ref.item<double>()).epsilon(1e-6));
  out.loss.backward();
  double worst = 0;
  for (auto& [name, p] : m->named_weights())
    worst = std::max(worst, test::max_abs_diff(p.grad(), grads[name]) / (grads[name].abs().max().item<double>() + 1e-12));
  CHECK(worst < 1e-4);
}

TEST_CASE("build_model follows the model config: preset, weights, dtype and the runtime switches", "[model]") {
  auto m = random_tiny(11);
  auto dir = test::fresh_dir("model_from_config");
  model::SaveOptions save;
  save.dtype = torch::kFloat32;
  model::save_pretrained(m, dir, save);
  ModelConfig cfg;
  cfg.preset = test::source_path("configs/models/tiny.json");
  cfg.weights = dir;
  cfg.attention = "math";
  cfg.row_masking = "meta";
  cfg.vision_taps = "layer_outputs";
  REQUIRE(cfg.validate().empty());
  auto built = model::build_model(cfg, 0);
  CHECK(built->runtime.backend == model::AttentionBackend::kMath);
  CHECK(built->runtime.row_masking == model::RowMasking::kMeta);
  CHECK(built->runtime.vision_taps == model::VisionTaps::kLayerOutputs);
  auto a = m->named_weights(), b = built->named_weights();
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
  cfg.weights.clear();
  cfg.dtype = "bf16";
  auto fresh = model::build_model(cfg, 3), again = model::build_model(cfg, 3);
  CHECK(fresh->language_model->lm_head->weight.scalar_type() == torch::kBFloat16);
  CHECK(torch::equal(fresh->language_model->lm_head->weight, again->language_model->lm_head->weight));
  // Cross-attention gates: closed by default (transformers' init), opened by init_cross_attention_gate; the
  // other gates and every other weight are untouched by it.
  cfg.dtype = "fp32";
  auto closed = model::build_model(cfg, 3);
  cfg.init_cross_attention_gate = 1.5;
  auto open = model::build_model(cfg, 3);
  int gates = 0;
  auto wc = closed->named_weights(), wo = open->named_weights();
  for (size_t i = 0; i < wo.size(); ++i) {
    const auto& name = wo[i].first;
    INFO(name);
    const bool cross_gate = name.find("cross_attn_attn_gate") != std::string::npos ||
                            name.find("cross_attn_mlp_gate") != std::string::npos;
    if (cross_gate) {
      ++gates;
      CHECK(wc[i].second.item<double>() == 0.0);
      CHECK(wo[i].second.item<double>() == 1.5);
    } else {
      CHECK(torch::equal(wc[i].second, wo[i].second));
    }
  }
  CHECK(gates == 2 * static_cast<int>(open->config.text.cross_attention_layers.size()));
  cfg.init_cross_attention_gate = 11;
  cfg.attention = "flash";
  cfg.vision_taps = "inputs";
  CHECK(cfg.validate().size() == 3);
}
