// The trainer's pieces: AdamW against a hand-computed update, the schedules, clipping, parameter groups, and
// gradient accumulation equal to one large batch.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "llavacot/data/demo.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/train/optim.h"
#include "llavacot/train/trainer.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;

TEST_CASE("AdamW's fused update equals the update computed by hand", "[train]") {
  auto w = torch::tensor({0.5, -1.0, 2.0}, torch::kFloat).set_requires_grad(true);
  auto frozen = torch::tensor({1.0f});  // no grad: left alone
  train::AdamW opt({{"w", w}, {"frozen", frozen}}, {0.1, 0.9, 0.999, 1e-8, 0.01});
  CHECK(opt.params().size() == 1);
  const std::vector<std::vector<double>> grads = {{0.1, -0.2, 0.3}, {0.05, 0.4, -0.1}};
  std::vector<double> p = {0.5, -1.0, 2.0}, m(3, 0), v(3, 0);
  for (size_t t = 0; t < grads.size(); ++t) {
    w.mutable_grad() = torch::tensor(grads[t], torch::kFloat);
    const double lr = t == 0 ? 0.1 : 0.05;
    opt.step(lr);
    for (size_t i = 0; i < 3; ++i) {
      p[i] *= 1 - lr * 0.01;  // decoupled weight decay
      m[i] = 0.9 * m[i] + 0.1 * grads[t][i];
      v[i] = 0.999 * v[i] + 0.001 * grads[t][i] * grads[t][i];
      const double mhat = m[i] / (1 - std::pow(0.9, t + 1)), vhat = v[i] / (1 - std::pow(0.999, t + 1));
      p[i] -= lr * mhat / (std::sqrt(vhat) + 1e-8);
    }
    for (size_t i = 0; i < 3; ++i) CHECK(w[static_cast<int64_t>(i)].item<double>() == Approx(p[i]).epsilon(1e-6));
  }
  CHECK(opt.steps() == 2);
  // State round trip: a new optimizer loaded with the state continues identically.
  std::map<std::string, torch::Tensor> saved;
  for (const auto& [k, t] : opt.state()) saved[k] = t.clone();
  auto w2 = w.detach().clone().set_requires_grad(true);
  train::AdamW opt2({{"w", w2}}, {0.1, 0.9, 0.999, 1e-8, 0.01});
  opt2.load_state(saved, 2);
  w.mutable_grad() = torch::tensor({0.3, 0.3, -0.3}, torch::kFloat);
  w2.mutable_grad() = w.grad().clone();
  opt.step(0.02);
  opt2.step(0.02);
  CHECK(torch::equal(w, w2));
  saved.erase("exp_avg.w");
  CHECK_THROWS_AS(opt2.load_state(saved, 3), FormatError);
}

TEST_CASE("learning-rate schedules follow their definitions", "[train]") {
  train::LrSchedule s{"cosine", 1.0, 10, 110, 50, 0.85};
  CHECK(s.at(0) == 0.0);  // warmup from 0, as transformers' schedules
  CHECK(s.at(5) == Approx(0.5));
  CHECK(s.at(10) == Approx(1.0));
  CHECK(s.at(60) == Approx(0.5));
  CHECK(s.at(110) == Approx(0.0).margin(1e-12));
  s.kind = "linear";
  CHECK(s.at(60) == Approx(0.5));
  s.kind = "constant";
  CHECK(s.at(100) == 1.0);
  train::LrSchedule step{"step", 1e-5, 0, 300, 100, 0.85};  // the paper's StepLR: per epoch
  CHECK(step.at(0) == Approx(1e-5));
  CHECK(step.at(99) == Approx(1e-5));
  CHECK(step.at(100) == Approx(8.5e-6));
  CHECK(step.at(250) == Approx(7.225e-6));
  CHECK_THROWS_AS((train::LrSchedule{"wavy", 1, 0, 1, 1, 1}.at(3)), UsageError);
}

TEST_CASE("clipping by global norm scales only when the norm exceeds the limit", "[train]") {
  auto a = torch::zeros({2}).set_requires_grad(true), b = torch::zeros({1}).set_requires_grad(true);
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  CHECK(train::clip_grad_norm({a, b}, 10.0) == Approx(5.0));
  CHECK(b.grad().item<float>() == 4.0f);
  CHECK(train::clip_grad_norm({a, b}, 1.0) == Approx(5.0));
  CHECK(b.grad().item<float>() == Approx(0.8).epsilon(1e-5));
  b.mutable_grad() = torch::tensor({NAN});
  CHECK(std::isnan(train::clip_grad_norm({a, b}, 1.0)));
  CHECK(train::clip_coefficient(5.0, 1.0) == Approx(1.0 / (5.0 + 1e-6)));
  CHECK(train::clip_coefficient(0.5, 1.0) == 1.0);
  CHECK(train::clip_coefficient(5.0, 0.0) == 1.0);  // clipping off
  CHECK(train::clip_coefficient(NAN, 1.0) == 1.0);
}

TEST_CASE("AdamW with a gradient factor equals the update from scaled gradients", "[train]") {
  torch::manual_seed(3);
  auto make = [] {
    std::vector<std::pair<std::string, torch::Tensor>> ps;
    ps.emplace_back("w", torch::randn({5, 3}).set_requires_grad(true));
    ps.emplace_back("b", torch::randn({7}).set_requires_grad(true));
    return ps;
  };
  auto fused = make(), scaled = make();
  for (size_t i = 0; i < fused.size(); ++i) scaled[i].second.data().copy_(fused[i].second.data());
  train::AdamW a(fused, {1e-2, 0.9, 0.999, 1e-8, 0.1}), b(scaled, {1e-2, 0.9, 0.999, 1e-8, 0.1});
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < fused.size(); ++i) {
      auto g = torch::randn(fused[i].second.sizes()) * 4;
      fused[i].second.mutable_grad() = g.clone();
      scaled[i].second.mutable_grad() = g * 0.3;
    }
    a.step(1e-2, 0.3);
    b.step(1e-2);
    for (size_t i = 0; i < fused.size(); ++i)
      CHECK(test::max_abs_diff(fused[i].second.detach(), scaled[i].second.detach()) < 1e-6);
  }
  CHECK_THROWS_AS(a.step(1e-2, 0.0), UsageError);
}

TEST_CASE("parameter groups cover the model as train.freeze names them", "[train]") {
  const auto c = model::load_preset("tiny");
  model::MllamaForConditionalGeneration m(c, torch::TensorOptions().device(torch::kMeta));
  std::map<std::string, int> seen;
  for (const auto& [name, p] : m->named_weights()) {
    const auto g = train::parameter_group(name, c);
    ++seen[g];
    if (name.find("cross_attn") != std::string::npos) CHECK(g == "cross_attention");
  }
  for (const auto& g : train::parameter_groups()) CHECK(seen[g] > 0);
  CHECK(seen[""] == 1);  // language_model.model.norm.weight
  CHECK(train::parameter_group("language_model.model.layers.1.cross_attn.q_proj.weight", c) == "cross_attention");
  CHECK(train::parameter_group("language_model.model.layers.0.self_attn.q_proj.weight", c) == "self_attention");
}

TEST_CASE("k accumulated micro-batches give the gradient of one batch k times the size", "[train]") {
  const std::string dir = test::fresh_dir("train_accum");
  const std::string demo = test::make_demo(dir, 40);
  const auto c = model::load_preset("tiny");
  auto tok = text::load_tokenizer(demo + "/tokenizer.json", c.image_token_index);
  vision::ImageProcessor images(data::image_processor_config(c.vision));
  data::ReaderOptions ro;
  ro.image_root = demo + "/images";
  data::LlavaCotReader reader(demo + "/train.jsonl", ro);
  data::Preprocessor pre(*tok, images, {});
  std::vector<data::Example> ex;
  for (size_t i = 0; i < 4; ++i) ex.push_back(pre(reader.get(i), i));
  const auto pad = tok->special_ids().pad, image = tok->special_ids().image;
  const auto whole = data::collate(ex, pad, image, images);
  const auto first = data::collate({ex[0], ex[1], ex[2]}, pad, image, images), second = data::collate({ex[3]}, pad, image, images);

  ModelConfig mc;
  mc.preset = "tiny";
  auto grads = [&](const std::vector<data::Batch>& micro, double* loss) {
    auto m = model::build_model(mc, 3);
    // Open the gates so the image path gets gradients too.
    for (auto& [name, p] : m->named_weights())
      if (name.find("gate") != std::string::npos) p.detach().fill_(0.5);
    const auto r = train::forward_backward(m, micro, torch::kCPU, "fp32");
    *loss = r.loss;
    std::vector<torch::Tensor> g;
    for (auto& [name, p] : m->named_weights()) g.push_back(p.grad().clone());
    return g;
  };
  double l1 = 0, l2 = 0;
  const auto g1 = grads({whole}, &l1), g2 = grads({first, second}, &l2);
  CHECK(l1 == Approx(l2).epsilon(1e-6));
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g1.size(); ++i) {
    worst = std::max(worst, test::max_abs_diff(g1[i], g2[i]));
    scale = std::max(scale, g1[i].abs().max().item<double>());
  }
  INFO("max |grad difference| " << worst << " of max |grad| " << scale);
  CHECK(scale > 0);
  CHECK(worst < 1e-5 * scale);
}

namespace {

model::MllamaInputs labelled_batch(const model::MllamaConfig& c) {
  const auto image = c.image_token_index;
  auto row = [&](int64_t n, uint64_t seed, int64_t ar) {
    test::PromptRow r;
    r.ids = {image};
    for (auto t : test::random_tokens(c, n, seed)) r.ids.push_back(t);
    r.aspect_ratio_ids = {ar};
    return r;
  };
  auto in = test::make_batch(c, {row(20, 1, 6), row(14, 2, 1)}, 5);
  in.labels = test::make_labels(in, 3);
  return in;
}

std::vector<torch::Tensor> gradients(model::MllamaForConditionalGeneration& m, const model::MllamaInputs& in) {
  for (auto& [name, p] : m->named_weights()) p.mutable_grad() = torch::Tensor();
  m->forward(in).loss.backward();
  std::vector<torch::Tensor> g;
  for (auto& [name, p] : m->named_weights()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return g;
}

}  // namespace

TEST_CASE("activation checkpointing gives the same gradients, frozen embeddings included", "[train]") {
  ModelConfig mc;
  mc.preset = "tiny";
  auto m = model::build_model(mc, 4);
  for (auto& [name, p] : m->named_weights())
    if (name.find("gate") != std::string::npos) p.detach().fill_(0.7);
  const auto in = labelled_batch(m->config);
  struct Case {
    const char* frozen;  // name fragment of the frozen parameters ("" = none)
    bool vision;         // checkpoint the vision layers too
    int min_compared;
  };
  for (const Case& c : {Case{"", true, 41}, Case{"", false, 41}, Case{"embed_tokens", true, 40},
                        Case{"vision_model.", true, 10}}) {
    INFO("frozen: '" << c.frozen << "', vision layers checkpointed: " << c.vision);
    for (auto& [name, p] : m->named_weights()) p.set_requires_grad(!(*c.frozen && name.find(c.frozen) != std::string::npos));
    m->runtime.checkpoint_vision = c.vision;
    m->runtime.activation_checkpointing = false;
    const auto plain = gradients(m, in);
    m->runtime.activation_checkpointing = true;
    const auto ckpt = gradients(m, in);
    REQUIRE(plain.size() == ckpt.size());
    int compared = 0;
    for (size_t i = 0; i < plain.size(); ++i) {
      INFO("parameter " << m->named_weights()[i].first);
      REQUIRE(plain[i].defined() == ckpt[i].defined());
      if (!plain[i].defined()) continue;
      CHECK(test::max_abs_diff(plain[i], ckpt[i]) <= 1e-6 * std::max(1.0, plain[i].abs().max().item<double>()));
      ++compared;
    }
    CHECK(compared >= c.min_compared);
  }
}

TEST_CASE("bf16 autocast and pure bf16 steps give losses close to fp32", "[train]") {
  ModelConfig mc;
  mc.preset = "tiny";
  auto m = model::build_model(mc, 4);
  const auto in = labelled_batch(m->config);
  const double fp32 = m->forward(in).loss.item<double>();
  data::Batch b;
  b.input_ids = in.input_ids;
  b.attention_mask = in.attention_mask;
  b.labels = in.labels;
  b.pixel_values = in.pixel_values;
  b.aspect_ratio_ids = in.aspect_ratio_ids;
  b.aspect_ratio_mask = in.aspect_ratio_mask;
  b.cross_attention_mask = in.cross_attention_mask;
  const auto autocast = train::forward_backward(m, {b}, torch::kCPU, "bf16_autocast");
  CHECK(autocast.finite);
  CHECK(autocast.loss == Approx(fp32).epsilon(0.01));
  for (auto& [name, p] : m->named_weights()) CHECK(p.scalar_type() == torch::kFloat);  // the fp32 master weights
  mc.dtype = "bf16";
  auto mb = model::build_model(mc, 4);
  const auto pure = train::forward_backward(mb, {b}, torch::kCPU, "bf16");
  CHECK(pure.finite);
  CHECK(pure.loss == Approx(fp32).epsilon(0.02));
  train::AdamW opt(mb->named_weights(), {1e-3, 0.9, 0.999, 1e-8, 0.0});
  opt.step(1e-3);
  for (const auto& [k, t] : opt.state())
    if (k.rfind("exp_avg.", 0) == 0) CHECK(t.scalar_type() == torch::kBFloat16);
}
