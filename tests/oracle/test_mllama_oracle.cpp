// Our mllama model against transformers' MllamaForConditionalGeneration (CPU, fp32, eager attention):
// the same random weights loaded both ways, logits, vision features, cross-attention states, cached
// decoding, the loss and every parameter's gradient.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "llavacot/decode/engine.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;
using model::MllamaInputs;

namespace {

struct Case {
  MllamaInputs in;
  int64_t prefix = 0;    // > 0: also decode step by step after the first `prefix` tokens
  int64_t generate = 0;  // > 0: also greedy generate() this many new tokens at most
  std::vector<int64_t> eos = {};
};
using Cases = std::map<std::string, Case>;
using Results = std::map<std::string, torch::Tensor>;

// Parses the last line of the script's output (warnings may come first) and fails with the whole output.
void require_ok(const test::CommandResult& r) {
  INFO(r.output.substr(r.output.size() > 4000 ? r.output.size() - 4000 : 0));
  REQUIRE(r.exit_code == 0);
}

std::string make_reference_model(const std::string& preset, const std::string& tag, int seed, bool new_keys = false) {
  auto cfg = model::load_preset(test::source_path("configs/models/" + preset + ".json"));
  auto dir = test::fresh_dir(tag);
  std::ofstream(dir + "/config.json") << model::config_json(cfg);
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/mllama_oracle.py",
      "make " + test::shell_quote(dir) + " " + std::to_string(seed) + (new_keys ? " --new-keys" : ""))));
  return dir;
}

// taps_inputs: run the reference with the vision taps of transformers 4.46 / Meta (see mllama_oracle.py).
Results run_reference(const std::string& model_dir, const Cases& cases, const std::string& scratch,
                      bool taps_inputs = false) {
  safetensors::NamedTensors tensors;
  for (const auto& [name, c] : cases) {
    auto add = [&, &name = name](const char* field, const torch::Tensor& t) {  // clang 14: no binding captures
      if (t.defined()) tensors.emplace_back(name + "." + field, t.contiguous());
    };
    add("input_ids", c.in.input_ids);
    add("attention_mask", c.in.attention_mask);
    add("position_ids", c.in.position_ids);
    add("pixel_values", c.in.pixel_values);
    add("aspect_ratio_ids", c.in.aspect_ratio_ids);
    add("aspect_ratio_mask", c.in.aspect_ratio_mask);
    add("cross_attention_mask", c.in.cross_attention_mask);
    add("labels", c.in.labels);
    if (c.prefix > 0) add("prefix", torch::tensor({c.prefix}, torch::kInt64));
    if (c.generate > 0) add("generate", torch::tensor({c.generate}, torch::kInt64));
    if (!c.eos.empty()) add("eos", torch::tensor(c.eos, torch::kInt64));
  }
  safetensors::save(scratch + "/inputs.safetensors", tensors);
  require_ok(test::run_command(test::python_script_command(
      "tests/oracle/mllama_oracle.py", "run " + test::shell_quote(model_dir) + " " +
                                           test::shell_quote(scratch + "/inputs.safetensors") + " " +
                                           test::shell_quote(scratch + "/outputs.safetensors") +
                                           (taps_inputs ? " --taps inputs" : ""))));
  Results out;
  for (auto& [name, t] : safetensors::load_all(scratch + "/outputs.safetensors")) out[name] = t.clone();
  return out;
}

// Our model from `dir`, collecting the vision taps as the pinned transformers release does.
model::MllamaForConditionalGeneration load_as_reference(const std::string& dir) {
  auto m = model::load_pretrained(dir, torch::kFloat32);
  m->runtime.vision_taps = model::VisionTaps::kLayerOutputs;
  return m;
}

// Logits at real (non-padding) positions only.
torch::Tensor real_rows(const torch::Tensor& logits, const torch::Tensor& attention_mask) {
  return logits.index({attention_mask.to(torch::kBool)});
}

// Our logits for every step of cached decoding: the first `prefix` tokens in one call, then one at a time.
torch::Tensor our_step_logits(const model::MllamaForConditionalGeneration& m, const MllamaInputs& in, int64_t prefix) {
  torch::NoGradGuard no_grad;
  model::GenerationCache cache;
  const auto s = in.input_ids.size(1);
  MllamaInputs first = in;
  first.input_ids = in.input_ids.narrow(1, 0, prefix);
  first.attention_mask = in.attention_mask.narrow(1, 0, prefix);
  first.position_ids = torch::Tensor();
  if (in.cross_attention_mask.defined()) first.cross_attention_mask = in.cross_attention_mask.narrow(1, 0, prefix);
  std::vector<torch::Tensor> steps{m->forward(first, &cache).logits.narrow(1, prefix - 1, 1)};
  for (int64_t t = prefix; t < s; ++t) {
    MllamaInputs step;
    step.input_ids = in.input_ids.narrow(1, t, 1);
    step.attention_mask = in.attention_mask.narrow(1, t, 1);
    if (in.cross_attention_mask.defined()) step.cross_attention_mask = in.cross_attention_mask.narrow(1, t, 1);
    steps.push_back(m->forward(step, &cache).logits);
  }
  return torch::cat(steps, 1);
}

// `head` followed by `n` seeded random text tokens.
std::vector<int64_t> with_random_tail(const model::MllamaConfig& cfg, std::vector<int64_t> head, int64_t n, uint64_t seed) {
  auto t = test::random_tokens(cfg, n, seed);
  head.insert(head.end(), t.begin(), t.end());
  return head;
}

Cases logit_cases(const model::MllamaConfig& cfg, bool all_aspect_ratios) {
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto text = [&](int64_t n, uint64_t seed) { return test::random_tokens(cfg, n, seed); };
  auto join = [](std::vector<std::vector<int64_t>> parts) {
    std::vector<int64_t> out;
    for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  Cases cases;
  cases["text"].in = test::make_batch(cfg, {{join({{bos}, text(13, 1)}), {}}}, 1);
  const int64_t ratios = all_aspect_ratios ? cfg.vision.max_aspect_ratio_id() : 2;
  for (int64_t id = 1; id <= ratios; ++id) {
    // Rows before the image token see no image: the reference's uniform-attention quirk is exercised.
    cases["image_ar" + std::to_string(id)].in =
        test::make_batch(cfg, {{join({{bos}, text(3, 10 + id), {img}, text(7, 20 + id)}), {id}}}, 100 + id);
  }
  // Several images in one prompt: two adjacent image tokens, then text, then a third image.
  cases["three_images"].in = test::make_batch(
      cfg, {{join({{img, img, bos}, text(4, 31), {img}, text(5, 32)}), {6, 1, 8}}}, 7);
  // A left-padded batch of rows with different lengths and image counts.
  cases["padded_images"].in = test::make_batch(cfg,
                                               {{join({{img, bos}, text(9, 41)}), {2}},
                                                {join({{bos}, text(2, 42), {img}, text(2, 43)}), {5}},
                                                {join({{img, img, bos}, text(5, 44)}), {3, 7}}},
                                               8);
  cases["padded_text"].in =
      test::make_batch(cfg, {{join({{bos}, text(11, 51)}), {}}, {join({{bos}, text(4, 52)}), {}}}, 9);
  return cases;
}

void compare_logits(const model::MllamaForConditionalGeneration& ours, const Cases& cases, const Results& ref,
                    double tolerance) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, c] : cases) {
    INFO("case " << name);
    auto logits = ours->forward(c.in).logits;
    auto diff = test::max_abs_diff(real_rows(logits, c.in.attention_mask),
                                   real_rows(ref.at(name + ".logits"), c.in.attention_mask));
    INFO("max |logit diff| = " << diff << ", max |logit| = " << ref.at(name + ".logits").abs().max().item<double>());
    CHECK(diff < tolerance);
    if (c.in.pixel_values.defined()) {
      auto vision = ours->vision_features(c.in.pixel_values, c.in.aspect_ratio_ids, c.in.aspect_ratio_mask);
      CHECK(test::max_abs_diff(vision, ref.at(name + ".vision")) < tolerance);
      auto states = ours->cross_attention_states(c.in.pixel_values, c.in.aspect_ratio_ids, c.in.aspect_ratio_mask);
      CHECK(test::max_abs_diff(states, ref.at(name + ".cross_states")) < tolerance);
    }
  }
}

}  // namespace

TEST_CASE("logits, vision features and cross-attention states equal transformers (tiny, their weights)",
          "[oracle][model]") {
  auto dir = make_reference_model("tiny", "mllama_oracle_logits", 11);
  auto cases = logit_cases(model::read_config(dir), true);
  auto ref = run_reference(dir, cases, dir);
  for (auto backend : {model::AttentionBackend::kFused, model::AttentionBackend::kMath}) {
    INFO("attention " << model::attention_backend_name(backend) << ", vision taps as transformers 5.x");
    auto ours = load_as_reference(dir);
    ours->runtime.backend = backend;
    compare_logits(ours, cases, ref, 1e-4);
  }
  // Our default: the taps of Meta's reference and transformers 4.45-4.5x (the released checkpoints').
  auto ref_inputs = run_reference(dir, cases, dir, /*taps_inputs=*/true);
  INFO("vision taps as Meta / transformers 4.46");
  compare_logits(model::load_pretrained(dir, torch::kFloat32), cases, ref_inputs, 1e-4);
  // The two conventions really differ, so the comparison above can tell them apart.
  CHECK(test::max_abs_diff(ref.at("image_ar1.vision"), ref_inputs.at("image_ar1.vision")) > 1e-2);
}

TEST_CASE("logits equal transformers for the small preset", "[oracle][model]") {
  auto dir = make_reference_model("small", "mllama_oracle_small", 12);
  auto all = logit_cases(model::read_config(dir), false);
  Cases cases{{"text", all["text"]}, {"image_ar2", all["image_ar2"]}, {"padded_images", all["padded_images"]}};
  auto ref = run_reference(dir, cases, dir);
  compare_logits(load_as_reference(dir), cases, ref, 1e-4);
}

TEST_CASE("cached decoding step by step equals transformers' cached decoding", "[oracle][model]") {
  auto dir = make_reference_model("tiny", "mllama_oracle_decode", 13);
  auto cfg = model::read_config(dir);
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto row = [&](std::vector<int64_t> head, int64_t n, uint64_t seed) { return with_random_tail(cfg, head, n, seed); };
  Cases cases;
  cases["images"] = {test::make_batch(cfg, {{row({img, bos}, 12, 1), {4}}, {row({bos, 7, img}, 6, 2), {2}}}, 3), 8};
  cases["text"] = {test::make_batch(cfg, {{row({bos}, 12, 4), {}}, {row({bos}, 8, 5), {}}}, 6), 6};
  auto ref = run_reference(dir, cases, dir);
  auto ours = load_as_reference(dir);
  for (const auto& [name, c] : cases) {
    INFO("case " << name);
    auto steps = our_step_logits(ours, c.in, c.prefix);
    auto diff = test::max_abs_diff(steps, ref.at(name + ".step_logits"));
    INFO("max |step logit diff| = " << diff);
    CHECK(diff < 1e-4);
  }
}

TEST_CASE("the loss and the gradient of every parameter equal transformers", "[oracle][model]") {
  auto dir = make_reference_model("tiny", "mllama_oracle_grad", 14);
  auto cfg = model::read_config(dir);
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto t1 = test::random_tokens(cfg, 10, 61), t2 = test::random_tokens(cfg, 6, 62);
  std::vector<int64_t> r1{img, bos}, r2{bos, 9, img};
  r1.insert(r1.end(), t1.begin(), t1.end());
  r2.insert(r2.end(), t2.begin(), t2.end());
  Case c{test::make_batch(cfg, {{r1, {5}}, {r2, {8}}}, 63)};
  c.in.labels = test::make_labels(c.in, 3);
  Cases cases{{"train", c}};
  auto ref = run_reference(dir, cases, dir);
  auto ours = load_as_reference(dir);
  auto out = ours->forward(c.in);
  out.loss.backward();
  INFO("loss ours " << out.loss.item<double>() << " reference " << ref.at("train.loss").item<double>());
  CHECK(std::abs(out.loss.item<double>() - ref.at("train.loss").item<double>()) < 1e-5);
  int64_t compared = 0;
  for (auto& [name, p] : ours->named_weights()) {
    INFO("gradient of " << name);
    auto it = ref.find("train.grad." + name);
    REQUIRE(it != ref.end());
    REQUIRE(p.grad().defined());
    const double scale = std::max(1.0, it->second.abs().max().item<double>());
    CHECK(test::max_abs_diff(p.grad(), it->second) <= 1e-4 * scale);
    ++compared;
  }
  CHECK(compared == static_cast<int64_t>(ours->named_weights().size()));
}

TEST_CASE("transformers loads the checkpoints we save and computes the same logits", "[oracle][model]") {
  auto cfg = model::load_preset(test::source_path("configs/models/tiny.json"));
  model::MllamaForConditionalGeneration ours(cfg);
  ours->runtime.vision_taps = model::VisionTaps::kLayerOutputs;
  model::init_weights(ours, 5);
  {
    torch::NoGradGuard no_grad;
    // Non-zero gates and non-trivial norms, so every path shows in the logits.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(77);
    for (auto& [name, p] : ours->named_weights())
      if (name.find("gate") != std::string::npos || name.find("norm") != std::string::npos)
        p.add_(torch::randn(p.sizes(), gen) * 0.5);
  }
  auto dir = test::fresh_dir("mllama_oracle_ours");
  model::SaveOptions save;
  save.dtype = torch::kFloat32;
  save.max_shard_bytes = 400 * 1024;  // several shards and an index
  auto files = model::save_pretrained(ours, dir, save);
  CHECK(files.size() > 3);
  auto all = logit_cases(cfg, false);
  Cases cases{{"text", all["text"]}, {"three_images", all["three_images"]}, {"padded_images", all["padded_images"]}};
  auto ref = run_reference(dir, cases, dir);
  compare_logits(ours, cases, ref, 1e-4);
}

TEST_CASE("checkpoints with transformers >= 4.52 key names load to the same weights", "[oracle][model]") {
  auto legacy = make_reference_model("tiny", "mllama_oracle_keys_legacy", 21);
  auto renamed = make_reference_model("tiny", "mllama_oracle_keys_new", 21, /*new_keys=*/true);
  auto names = safetensors::File::open(renamed + "/model.safetensors").names();
  CHECK(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.rfind("model.", 0) == 0; }) > 50);
  auto a = model::load_pretrained(legacy, torch::kFloat32);
  auto b = model::load_pretrained(renamed, torch::kFloat32);
  auto wa = a->named_weights(), wb = b->named_weights();
  REQUIRE(wa.size() == wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO(wa[i].first);
    CHECK(torch::equal(wa[i].second, wb[i].second));
  }
}

TEST_CASE("greedy decoding equals transformers' generate(do_sample=False) token for token", "[oracle][decode]") {
  auto dir = make_reference_model("tiny", "mllama_oracle_generate", 21);
  auto cfg = model::read_config(dir);
  const int64_t img = cfg.image_token_index, bos = cfg.text.bos_token_id;
  auto row = [&](std::vector<int64_t> head, int64_t n, uint64_t seed) { return with_random_tail(cfg, head, n, seed); };
  const int64_t n_new = 24;
  Cases cases;
  cases["image"] = {test::make_batch(cfg, {{row({bos, img}, 14, 71), {3}}}, 72), 0, n_new, cfg.text.eos_token_id};
  cases["text"] = {test::make_batch(cfg, {{row({bos}, 11, 73), {}}}, 74), 0, n_new, cfg.text.eos_token_id};
  auto ref = run_reference(dir, cases, dir);
  auto demo = test::make_demo(test::fresh_dir("mllama_oracle_generate_tok"), 8);
  decode::Engine engine(load_as_reference(dir), text::load_tokenizer(demo + "/tokenizer.json", cfg.image_token_index));
  engine.set_eos(cfg.text.eos_token_id);
  for (const auto& [name, c] : cases) {
    INFO("case " << name);
    decode::Prompt p;
    auto ids = c.in.input_ids[0];
    p.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    p.pixel_values = c.in.pixel_values;
    p.aspect_ratio_ids = c.in.aspect_ratio_ids;
    p.aspect_ratio_mask = c.in.aspect_ratio_mask;
    p.cross_attention_mask = c.in.cross_attention_mask;
    auto rows = engine.prefill({p});
    decode::GenerateRequest q;
    q.max_new_tokens = n_new;
    auto g = engine.generate(rows, {q}).at(0);
    auto theirs = ref.at(name + ".generated")[0];
    std::vector<int64_t> expected(theirs.data_ptr<int64_t>(), theirs.data_ptr<int64_t>() + theirs.numel());
    CHECK(g.tokens == expected);
    CHECK(static_cast<int64_t>(g.tokens.size()) >= 8);  // the comparison covers real decoding steps
  }
}
