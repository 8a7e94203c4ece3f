// The decode area: stage parsing, samplers, stop strings, prompt templates, the engine on the tiny model
// (greedy against full forwards, batched against one-by-one, forks that reuse the prefix, stop strings across
// tokens, score-only log-probabilities), the search strategies on a scripted policy and scorer, and the http
// scorer against a stub server on loopback.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "llavacot/decode/decoder.h"
#include "llavacot/decode/engine.h"
#include "llavacot/decode/prompts.h"
#include "llavacot/decode/sampler.h"
#include "llavacot/decode/scorer.h"
#include "llavacot/decode/stages.h"
#include "llavacot/decode/strategy.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/error.h"
#include "support/model_inputs.h"
#include "support/support.h"

using namespace llavacot;
using namespace llavacot::decode;
using Catch::Matchers::Contains;

namespace {

// ---------------------------------------------------------------------------------------------------------
// The tiny model with random weights and the demo tokenizer (its ids fit the tiny preset).

struct TinyEngine {
  std::shared_ptr<Engine> engine;
  model::MllamaConfig cfg;
};

std::shared_ptr<const text::Tokenizer> demo_tokenizer() {
  static std::shared_ptr<const text::Tokenizer> tok = [] {
    auto demo = test::make_demo(test::fresh_dir("decode_tok_" + std::to_string(::getpid())), 12);
    return std::shared_ptr<const text::Tokenizer>(text::load_tokenizer(demo + "/tokenizer.json", 512));
  }();
  return tok;
}

TinyEngine tiny_engine(uint64_t seed = 5) {
  auto m = test::random_tiny_model(seed);
  TinyEngine t{std::make_shared<Engine>(m, demo_tokenizer()), m->config};
  return t;
}

Prompt prompt_from(const model::MllamaInputs& in) {
  Prompt p;
  auto ids = in.input_ids[0].contiguous();
  p.ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  p.pixel_values = in.pixel_values;
  p.aspect_ratio_ids = in.aspect_ratio_ids;
  p.aspect_ratio_mask = in.aspect_ratio_mask;
  p.cross_attention_mask = in.cross_attention_mask;
  return p;
}

Prompt image_prompt(const model::MllamaConfig& cfg, uint64_t seed, int64_t n = 12) {
  std::vector<int64_t> ids{cfg.text.bos_token_id, cfg.image_token_index};
  for (auto t : test::random_tokens(cfg, n, seed)) ids.push_back(t);
  return prompt_from(test::make_batch(cfg, {{ids, {3}}}, seed + 1));
}

GenerateRequest greedy_request(int64_t n) {
  GenerateRequest q;
  q.max_new_tokens = n;
  q.stop_on_eos = false;
  return q;
}

GenerateRequest sample_request(int64_t n, uint64_t seed) {
  GenerateRequest q = greedy_request(n);
  q.sampling.temperature = 1.0;
  q.sampling.top_p = 0.95;
  q.sampling.seed = seed;
  return q;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
TEST_CASE("stage parsing copes with well-formed, missing, repeated and unclosed tags", "[decode]") {
  auto p = parse_stages("<SUMMARY> plan </SUMMARY>\n\n<CAPTION> a red square </CAPTION> <REASONING> so 1 </REASONING>"
                        "<CONCLUSION> B </CONCLUSION>");
  CHECK(p.well_formed());
  CHECK(p[Stage::kSummary].text == "plan");
  CHECK(p[Stage::kCaption].text == "a red square");
  CHECK(p[Stage::kConclusion].text == "B");

  auto missing = parse_stages("<SUMMARY> plan </SUMMARY> <CONCLUSION> yes </CONCLUSION>");
  CHECK_FALSE(missing.well_formed());
  CHECK_FALSE(missing[Stage::kCaption].found);
  CHECK(missing[Stage::kConclusion].text == "yes");

  // A repeated tag: the first occurrence counts.
  auto repeated = parse_stages("<CAPTION> first </CAPTION> <CAPTION> second </CAPTION>");
  CHECK(repeated[Stage::kCaption].text == "first");

  // Unclosed: the content runs to the next opening tag, or to the end.
  auto unclosed = parse_stages("<SUMMARY> plan <CAPTION> cap </CAPTION> <CONCLUSION> 4");
  CHECK(unclosed[Stage::kSummary].found);
  CHECK_FALSE(unclosed[Stage::kSummary].closed);
  CHECK(unclosed[Stage::kSummary].text == "plan");
  CHECK(unclosed[Stage::kConclusion].text == "4");
  CHECK_FALSE(unclosed[Stage::kConclusion].closed);

  // A closing tag after a later opening tag does not close the earlier stage.
  auto crossed = parse_stages("<REASONING> r <CONCLUSION> c </CONCLUSION> </REASONING>");
  CHECK(crossed[Stage::kReasoning].text == "r");
  CHECK_FALSE(crossed[Stage::kReasoning].closed);

  CHECK(conclusion_or_tail("<REASONING> x </REASONING> The answer is C.") == "The answer is C.");
  CHECK(conclusion_or_tail("  just text ") == "just text");
  CHECK(conclusion_or_tail("<CONCLUSION>A</CONCLUSION>") == "A");
  CHECK(parse_stages("").spans[0].found == false);
  // Every stage present and closed, but out of order: not well formed.
  CHECK_FALSE(parse_stages("<CAPTION> c </CAPTION><SUMMARY> s </SUMMARY><REASONING> r </REASONING>"
                           "<CONCLUSION> x </CONCLUSION>")
                  .well_formed());
}

TEST_CASE("samplers: greedy, temperature, top-k, top-p and repetition penalty as transformers applies them",
          "[decode]") {
  auto logits = torch::tensor({1.0f, 3.0f, 2.0f, -1.0f, 0.5f});
  SamplingParams greedy;
  Sampler g(greedy);
  CHECK(g.next(logits, {}) == 1);
  // Penalty 2 on token 1 (positive: divided) and 3 (negative: multiplied).
  auto pen = logits.clone();
  apply_repetition_penalty(pen, {1, 3, 1}, 2.0);
  CHECK(pen[1].item<float>() == Approx(1.5f));
  CHECK(pen[3].item<float>() == Approx(-2.0f));
  CHECK(pen[0].item<float>() == Approx(1.0f));
  CHECK(g.next(logits, {1}) == 1);  // penalty 1: unchanged
  SamplingParams gp;
  gp.repetition_penalty = 2.0;
  CHECK(Sampler(gp).next(logits, {1}) == 2);  // 3/2 = 1.5 < 2

  SamplingParams topk;
  topk.temperature = 1;
  topk.top_k = 2;
  auto pk = process_logits(logits, {}, topk);
  CHECK(std::isfinite(pk[1].item<float>()));
  CHECK(std::isfinite(pk[2].item<float>()));
  CHECK(torch::isinf(pk).sum().item<int64_t>() == 3);

  // top-p 0.5: the most likely token alone holds ~0.63 of the mass, so only it survives.
  SamplingParams topp;
  topp.temperature = 1;
  topp.top_p = 0.5;
  auto pp = process_logits(logits, {}, topp);
  CHECK(torch::isinf(pp).sum().item<int64_t>() == 4);
  topp.top_p = 0.9;  // 0.63 + 0.23 = 0.86 < 0.9: a third token is needed
  CHECK(torch::isinf(process_logits(logits, {}, topp)).sum().item<int64_t>() == 2);

  // The top-k-first search keeps exactly the tokens transformers' full-sort rule keeps, on peaked and flat
  // distributions over a large vocabulary.
  for (double scale : {0.1, 1.0, 4.0, 12.0}) {
    for (double top_p : {0.3, 0.9, 0.99}) {
      INFO("scale " << scale << " top_p " << top_p);
      auto big = torch::randn({5000}, at::make_generator<at::CPUGeneratorImpl>(3)) * scale;
      SamplingParams sp;
      sp.temperature = 1;
      sp.top_p = top_p;
      auto ours = torch::isfinite(process_logits(big, {}, sp));
      auto [sorted, order] = big.sort(0, false);
      auto remove = sorted.softmax(0).cumsum(0) <= (1.0 - top_p);
      remove[-1] = false;
      auto expected = torch::ones({5000}, torch::kBool);
      expected.index_put_({order.masked_select(remove)}, false);
      CHECK(torch::equal(ours, expected));
    }
  }

  // Ids past the logits (the image token) are not penalised, and do not fail.
  auto with_image = logits.clone();
  apply_repetition_penalty(with_image, {1, 5, 512}, 2.0);
  CHECK(with_image[1].item<float>() == Approx(1.5f));
  // top-k keeps ties with the k-th value, also when top-p follows.
  SamplingParams tie;
  tie.temperature = 1;
  tie.top_k = 1;
  tie.top_p = 0.99;
  CHECK(torch::isinf(process_logits(torch::tensor({2.0f, 2.0f, 2.0f, 1.0f}), {}, tie)).sum().item<int64_t>() == 1);
  // top-k then top-p: top-p works on the mass renormalised over the top-k survivors.
  SamplingParams both;
  both.temperature = 1;
  both.top_k = 3;
  both.top_p = 0.8;  // of tokens 1, 2, 0 (renormalised ~0.67, 0.24, 0.09): 1 and 2 stay
  auto pb = process_logits(logits, {}, both);
  CHECK(std::isfinite(pb[1].item<float>()));
  CHECK(std::isfinite(pb[2].item<float>()));
  CHECK(torch::isinf(pb).sum().item<int64_t>() == 3);

  SamplingParams hot;
  hot.temperature = 0.5;
  auto ph = process_logits(logits, {}, hot);
  CHECK(ph[1].item<float>() == Approx(6.0f));

  // Seeded: the same seed draws the same tokens; another seed draws others.
  SamplingParams s;
  s.temperature = 1;
  s.seed = 7;
  auto flat = torch::zeros({64});
  std::vector<int64_t> a, b, c;
  Sampler sa(s), sb(s);
  s.seed = 8;
  Sampler sc(s);
  for (int i = 0; i < 20; ++i) {
    a.push_back(sa.next(flat, {}));
    b.push_back(sb.next(flat, {}));
    c.push_back(sc.next(flat, {}));
  }
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("stop strings are found when they span pieces of text", "[decode]") {
  std::string text, which;
  size_t end = std::string::npos;
  for (const std::string piece : {"abc <", "/REA", "SON", "ING> tail"}) {
    const size_t from = text.size();
    text += piece;
    end = find_stop(text, from, {"</REASONING>", "zz"}, &which);
    if (end != std::string::npos) break;
  }
  REQUIRE(end != std::string::npos);
  CHECK(which == "</REASONING>");
  CHECK(text.substr(0, end) == "abc </REASONING>");
  // The earliest ending stop string wins; a stop string wholly inside old text is not looked for again.
  std::string t2 = "xx</A> yy";
  CHECK(find_stop(t2, 0, {"yy", "</A>"}, &which) == 6);
  CHECK(which == "</A>");
}

TEST_CASE("prompt templates: built-in defaults, per-file overrides and placeholders", "[decode]") {
  auto t = PromptTemplates::load("");
  for (const auto& name : PromptTemplates::names()) CHECK_FALSE(t.get(name).empty());
  CHECK_THAT(t.get("judge_reasoning"), Contains("{response1}"));
  CHECK(t.get("self_verify_prefix") == "<CONCLUSION>");
  auto dir = test::fresh_dir("decode_prompts_" + std::to_string(::getpid()));
  std::ofstream(dir + "/judge_caption.txt") << "Q={question} A={response1} B={response2} {unknown}";
  auto o = PromptTemplates::load(dir);
  CHECK(o.render("judge_caption", {{"question", "why"}, {"response1", "x"}, {"response2", "y"}}) == "Q=why A=x B=y {unknown}");
  CHECK(o.sources().at("judge_caption") == dir + "/judge_caption.txt");
  CHECK(o.sources().at("judge_summary") == "built-in");
  CHECK_THROWS_AS(PromptTemplates::load(dir + "/missing"), ConfigError);
  // The shipped files are the built-in texts.
  for (const auto& name : PromptTemplates::names()) {
    std::ifstream in(test::source_path("configs/decode/prompts/" + name + ".txt"), std::ios::binary);
    std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(file == t.get(name));
  }
}

// ---------------------------------------------------------------------------------------------------------
TEST_CASE("engine: greedy decoding equals the argmax of full forwards at every step", "[decode]") {
  auto t = tiny_engine();
  for (bool with_image : {true, false}) {
    INFO("image " << with_image);
    Prompt p = image_prompt(t.cfg, 31);
    if (!with_image) {
      p.ids.erase(p.ids.begin() + 1);
      p.pixel_values = p.aspect_ratio_ids = p.aspect_ratio_mask = p.cross_attention_mask = torch::Tensor();
    }
    auto rows = t.engine->prefill({p});
    auto g = t.engine->generate(rows, {greedy_request(12)}).at(0);
    REQUIRE(g.tokens.size() == 12);
    // Full forwards without a cache over prompt + generated so far.
    torch::NoGradGuard no_grad;
    std::vector<int64_t> ids = p.ids;
    for (size_t k = 0; k < g.tokens.size(); ++k) {
      model::MllamaInputs in;
      in.input_ids = torch::tensor(ids, torch::kInt64).unsqueeze(0);
      if (with_image) {
        in.pixel_values = p.pixel_values;
        in.aspect_ratio_ids = p.aspect_ratio_ids;
        in.aspect_ratio_mask = p.aspect_ratio_mask;
        // The processor's rule: the image stays visible to every later token.
        auto last = p.cross_attention_mask.narrow(1, p.cross_attention_mask.size(1) - 1, 1);
        const int64_t extra = static_cast<int64_t>(ids.size()) - p.cross_attention_mask.size(1);
        in.cross_attention_mask = extra == 0 ? p.cross_attention_mask
                                             : torch::cat({p.cross_attention_mask, last.expand({1, extra, last.size(2), last.size(3)})}, 1);
      }
      auto logits = t.engine->model()->forward(in).logits[0][-1];
      CHECK(logits.argmax().item<int64_t>() == g.tokens[k]);
      ids.push_back(g.tokens[k]);
    }
    CHECK(rows.ids(0) == ids);
  }
}

TEST_CASE("engine: a batch of sampled candidates equals the same candidates generated one by one", "[decode]") {
  auto t = tiny_engine();
  auto base = t.engine->prefill({image_prompt(t.cfg, 41)});
  const std::vector<uint64_t> seeds{11, 12, 13, 14};
  std::vector<GenerateRequest> reqs;
  for (size_t i = 0; i < seeds.size(); ++i) {
    auto q = sample_request(8 + 3 * static_cast<int64_t>(i), seeds[i]);  // different budgets: rows end apart
    reqs.push_back(q);
  }
  auto batch = Engine::fork(base, {0, 0, 0, 0});
  auto together = t.engine->generate(batch, reqs);
  for (size_t i = 0; i < seeds.size(); ++i) {
    auto one = Engine::fork(base, {0});
    auto alone = t.engine->generate(one, {reqs[i]}).at(0);
    INFO("candidate " << i);
    CHECK(alone.tokens == together[i].tokens);
    CHECK(alone.logprob_sum == Approx(together[i].logprob_sum).margin(1e-4));
    CHECK(static_cast<int64_t>(alone.tokens.size()) == reqs[i].max_new_tokens);
  }
  CHECK(together[0].tokens != together[1].tokens);  // different seeds, different samples
}

TEST_CASE("engine: forks reuse the prefix (forward-token counts) and continue it exactly", "[decode]") {
  auto t = tiny_engine();
  auto& c = t.engine->counters();
  Prompt p = image_prompt(t.cfg, 51, 20);
  auto base = t.engine->prefill({p});
  CHECK(c.prefill_tokens == static_cast<int64_t>(p.ids.size()));
  CHECK(c.images_encoded == 1);
  CHECK(c.forward_passes == 1);
  // Stage one: a greedy continuation of 6 tokens.
  auto first = t.engine->generate(base, {greedy_request(6)}).at(0);
  CHECK(c.forward_passes == 1 + 5);  // the last token is fed only if the row is continued
  // Fork 3 rows from it and continue: the prompt is not run again, no image is encoded again.
  auto forked = Engine::fork(base, {0, 0, 0});
  auto next = t.engine->generate(forked, {greedy_request(4), greedy_request(4), greedy_request(4)});
  CHECK(c.prefill_tokens == static_cast<int64_t>(p.ids.size()));
  CHECK(c.images_encoded == 1);
  CHECK(c.generated_tokens == 6 + 3 * 4);
  CHECK(c.forward_passes == 6 + 1 + 3);  // one to feed the fork point's pending token, then 3 decode steps
  CHECK(next[0].tokens == next[1].tokens);
  CHECK(forked.image_cache_bytes() == base.image_cache_bytes());  // rows share one image entry
  // The forked continuation equals one uninterrupted greedy run of 10 tokens.
  auto fresh = t.engine->prefill({p});
  auto whole = t.engine->generate(fresh, {greedy_request(10)}).at(0);
  std::vector<int64_t> joined = first.tokens;
  joined.insert(joined.end(), next[0].tokens.begin(), next[0].tokens.end());
  CHECK(joined == whole.tokens);

  // Rows from several sets that share the image merge into one batch.
  // Rows of different lengths from several sets that share the image merge into one batch.
  auto merged = Engine::select({{&forked, 2}, {&base, 0}, {&forked, 0}});
  CHECK(merged.size() == 3);
  CHECK(merged.ids(0) == forked.ids(2));
  CHECK(merged.ids(1) == base.ids(0));
  auto more = t.engine->generate(merged, {greedy_request(3), greedy_request(3), greedy_request(3)});
  auto check = Engine::fork(base, {0});
  CHECK(t.engine->generate(check, {greedy_request(3)}).at(0).tokens == more[1].tokens);
  CHECK(more[0].tokens == more[2].tokens);
  // A prompt whose image was encoded separately cannot be merged with these rows.
  CHECK_THROWS_AS(Engine::select({{&base, 0}, {&fresh, 0}}), UsageError);
}

TEST_CASE("engine: stop strings across tokens, eos and the budget end rows", "[decode]") {
  auto t = tiny_engine(9);
  Prompt p = image_prompt(t.cfg, 61);
  auto rows = t.engine->prefill({p});
  auto free_run = t.engine->generate(rows, {greedy_request(24)}).at(0);
  CHECK(free_run.finish == Finish::kLength);
  // Per-token texts; find two neighbours with text and a stop string that starts inside the first and ends
  // inside the second.
  const auto& tok = *demo_tokenizer();
  std::vector<std::string> texts;
  for (auto id : free_run.tokens) texts.push_back(tok.decode({static_cast<text::TokenId>(id)}, true));
  // The first neighbours whose joint string does not occur earlier in the text.
  size_t k = 0;
  std::string stop;
  for (size_t i = 1; i + 1 < texts.size() && stop.empty(); ++i) {
    if (texts[i].size() < 2 || texts[i + 1].empty()) continue;
    std::string before;
    for (size_t j = 0; j <= i; ++j) before += texts[j];
    const std::string candidate = texts[i].substr(texts[i].size() - 1) + texts[i + 1].substr(0, 1);
    if (before.find(candidate) == std::string::npos) {
      stop = candidate;
      k = i;
    }
  }
  REQUIRE_FALSE(stop.empty());
  auto again = t.engine->prefill({p});
  auto q0 = greedy_request(24);
  q0.stop_strings = {"never appears", stop};
  auto g = t.engine->generate(again, {q0}).at(0);
  CHECK(g.finish == Finish::kStopString);
  CHECK(g.stop == stop);
  CHECK(g.tokens.size() == k + 2);  // ends with the token that completes the stop string
  REQUIRE(g.text.size() >= stop.size());
  CHECK(g.text.substr(g.text.size() - stop.size()) == stop);
  // eos: make the first greedy token an eos id.
  auto eos_rows = t.engine->prefill({p});
  t.engine->set_eos({free_run.tokens[0]});
  auto q = greedy_request(24);
  q.stop_on_eos = true;
  auto e = t.engine->generate(eos_rows, {q}).at(0);
  CHECK(e.finish == Finish::kEos);
  CHECK(e.tokens.size() == 1);
}

TEST_CASE("engine: a repetition penalty over a prompt with an image token", "[decode]") {
  auto t = tiny_engine();
  const Prompt p = image_prompt(t.cfg, 81);
  auto rows = t.engine->prefill({p});
  auto q = greedy_request(8);
  q.sampling.repetition_penalty = 1.3;
  auto g = t.engine->generate(rows, {q}).at(0);
  CHECK(g.tokens.size() == 8);
  // Its first token is the argmax of the penalised logits of a full forward over the prompt (whose ids
  // include the image token, past the logits' range).
  torch::NoGradGuard no_grad;
  model::MllamaInputs in;
  in.input_ids = torch::tensor(p.ids, torch::kInt64).unsqueeze(0);
  in.pixel_values = p.pixel_values;
  in.aspect_ratio_ids = p.aspect_ratio_ids;
  in.aspect_ratio_mask = p.aspect_ratio_mask;
  in.cross_attention_mask = p.cross_attention_mask;
  auto raw = t.engine->model()->forward(in).logits[0][-1];
  SamplingParams pen;
  pen.repetition_penalty = 1.3;
  CHECK(g.tokens[0] == Sampler(pen).next(raw, p.ids));
}

TEST_CASE("engine: score-only log-probabilities equal those recorded while generating", "[decode]") {
  auto t = tiny_engine();
  auto rows = t.engine->prefill({image_prompt(t.cfg, 71)});
  auto before = Engine::fork(rows, {0});
  auto g = t.engine->generate(rows, {greedy_request(10)}).at(0);
  std::vector<int64_t> shorter(g.tokens.begin(), g.tokens.begin() + 4);
  const auto forced_before = t.engine->counters().forced_tokens;
  auto lp = t.engine->score(before, 0, {g.tokens, shorter});
  REQUIRE(lp.size() == 2);
  REQUIRE(lp[0].size() == 10);
  double sum = 0;
  for (double v : lp[0]) sum += v;
  CHECK(sum == Approx(g.logprob_sum).margin(1e-3));
  for (size_t j = 0; j < 4; ++j) CHECK(lp[1][j] == Approx(lp[0][j]).margin(1e-4));
  CHECK(t.engine->counters().forced_tokens - forced_before == 14);
  CHECK(before.ids(0).size() == rows.ids(0).size() - 10);  // scoring leaves the rows as they were
  CHECK_THROWS_AS(t.engine->score(before, 0, {{}}), UsageError);
  CHECK_THROWS_AS(t.engine->score(before, 0, {{100000}}), UsageError);
}

// ---------------------------------------------------------------------------------------------------------
// Strategies on a scripted policy: every expansion appends the stage's text with a number, and a scripted
// scorer gives each candidate a score from a table keyed by the candidate's text.
namespace {

class FakePolicy : public Policy {
 public:
  FakePolicy() { nodes_.push_back({"", {}}); nodes_[0].piece.finish = Finish::kStopString; }
  const Question& question() const override { return q_; }
  Node root() override { return 0; }
  std::vector<Node> expand(const std::vector<Node>& parents, const std::string& stop, bool) override {
    calls.push_back({stop, parents.size()});
    std::vector<Node> out;
    for (Node p : parents) {
      const std::string tag = stop.empty() ? "ALL" : stop.substr(2, stop.size() - 3);
      const int id = ++counter_[tag];
      Entry e = nodes_[static_cast<size_t>(p)];
      const std::string letter = tag == "CONCLUSION" ? "O" : tag.substr(0, 1);  // S, C, R, O; A for whole answers
      e.piece.text = "<" + tag + "> " + letter + std::to_string(id) + " </" + tag + ">";
      e.text += e.piece.text;
      e.piece.finish = tag == "CONCLUSION" || tag == "ALL" ? Finish::kEos : Finish::kStopString;
      e.piece.mean_logprob = -0.1 * id;
      nodes_.push_back(e);
      out.push_back(static_cast<Node>(nodes_.size() - 1));
    }
    return out;
  }
  std::string text(Node n) const override { return nodes_.at(static_cast<size_t>(n)).text; }
  const Piece& piece(Node n) const override { return nodes_.at(static_cast<size_t>(n)).piece; }
  std::vector<std::string> ask(const std::vector<std::string>& prompts, bool) override {
    std::vector<std::string> out;
    for (size_t i = 0; i < prompts.size(); ++i) out.push_back("Since it is better, I choose response 1.");
    counters_.judge_calls += static_cast<int64_t>(prompts.size());
    return out;
  }
  std::vector<double> log_odds(const std::vector<std::string>& prompts, const std::string&, const std::string&,
                               const std::string&) override {
    return std::vector<double>(prompts.size(), 0.0);
  }
  Counters& counters() override { return counters_; }
  std::vector<std::pair<std::string, size_t>> calls;

 private:
  struct Entry {
    std::string text;
    Piece piece;
  };
  Question q_{"how many?", "", "", ""};
  std::vector<Entry> nodes_;
  std::map<std::string, int> counter_;
  Counters counters_;
};

// Scores by the name in the scored stage ("R3" -> table["R3"], default 0); whole answers by their last name.
class TableScorer : public Scorer {
 public:
  explicit TableScorer(std::map<std::string, double> table) : table_(std::move(table)) {}
  std::string name() const override { return "table"; }
  std::vector<double> score(Policy& p, const std::vector<Node>& nodes, ScoreTarget target) override {
    std::vector<double> out;
    for (Node n : nodes) {
      std::string key = target_text(p.text(n), target);
      if (target.whole_answer) {
        const auto text = p.text(n);
        const size_t end = text.rfind(" </");
        key = text.substr(text.rfind(' ', end - 1) + 1, end - text.rfind(' ', end - 1) - 1);
      }
      auto it = table_.find(key);
      out.push_back(it == table_.end() ? 0.0 : it->second);
      scored.push_back(key);
    }
    return out;
  }
  std::vector<std::string> scored;

 private:
  std::map<std::string, double> table_;
};

SearchSettings swires_settings(int64_t retraces, double threshold) {
  SearchSettings s;
  s.strategy = "swires";
  s.candidates = 4;
  s.keep = 2;
  s.max_retraces = retraces;
  s.conclusions = 2;
  s.threshold = threshold;
  return s;
}

}  // namespace

TEST_CASE("swires: rounds, retraces, the pooled threshold and the final pick", "[decode]") {
  SECTION("no round clears the threshold: C retraces, then conclusions for the best pooled reasonings") {
    FakePolicy p;
    // Reasonings R1..R16 over 4 rounds; R6 and R13 are the best two in the pool.
    auto scorer = std::make_shared<TableScorer>(std::map<std::string, double>{
        {"C2", 5}, {"C3", 4}, {"R6", 0.5}, {"R13", 0.4}, {"R2", 0.1}, {"O1", 1}, {"O2", 2}});
    auto s = make_strategy(swires_settings(3, 1.0), scorer);
    auto r = s->run(p);
    CHECK(r.retraces == 3);
    CHECK(r.rounds == 4);
    // 1 summary, 4 x (4 captions + 4 reasonings), 2 conclusions.
    std::vector<std::pair<std::string, size_t>> expected{{"</SUMMARY>", 1}};
    for (int i = 0; i < 4; ++i) {
      expected.push_back({"</CAPTION>", 4});
      expected.push_back({"</REASONING>", 4});
    }
    expected.push_back({"</CONCLUSION>", 2});
    CHECK(p.calls == expected);
    // The conclusions continue R6 (first) and R13; O2 scores higher, so the answer holds R13.
    CHECK_THAT(r.text, Contains("R13"));
    CHECK_THAT(r.text, Contains("O2"));
    CHECK_THAT(r.text, Contains("S1"));
  }
  SECTION("the second-best pooled reasoning clears the threshold in round 2: one retrace") {
    FakePolicy p;
    // Round 1: R1..R4 (R2 = 2 alone above 1); round 2: R5..R8 with R7 = 1.5, the second above 1.
    auto scorer = std::make_shared<TableScorer>(std::map<std::string, double>{{"R2", 2}, {"R7", 1.5}});
    auto r = make_strategy(swires_settings(3, 1.0), scorer)->run(p);
    CHECK(r.retraces == 1);
    CHECK(r.rounds == 2);
  }
  SECTION("the kept captions each get candidates / keep reasonings") {
    FakePolicy p;
    auto scorer = std::make_shared<TableScorer>(std::map<std::string, double>{{"C4", 9}, {"C1", 8}, {"R1", 5}, {"R2", 5}});
    auto r = make_strategy(swires_settings(0, 1.0), scorer)->run(p);
    CHECK(r.retraces == 0);
    // R1, R2 continue C4 (the best caption), R3, R4 continue C1.
    CHECK_THAT(p.text(r.node), Contains("C4"));
  }
  SECTION("a scalar scorer is required") {
    auto judge = std::make_shared<PairwiseJudge>(PromptTemplates::load(""), true);
    CHECK_THROWS_AS(make_strategy(swires_settings(3, 0), judge), ConfigError);
  }
}

TEST_CASE("stage_beam runs a knockout tournament per stage, best_of_n keeps the best, greedy expands once", "[decode]") {
  FakePolicy p;
  auto judge = std::make_shared<PairwiseJudge>(PromptTemplates::load(""), /*reasoning_precheck=*/true);
  SearchSettings s;
  s.strategy = "stage_beam";
  s.candidates = 4;
  auto r = make_strategy(s, judge)->run(p);
  // Four stages of 4 candidates; 3 pairwise judgements per stage; 2 correctness checks per reasoning match.
  CHECK(p.calls.size() == 4);
  for (const auto& c : p.calls) CHECK(c.second == 4);
  CHECK(p.counters().judge_calls == 4 * 3 + 3 * 2);
  const auto parsed = parse_stages(r.text);
  CHECK(parsed.well_formed());

  FakePolicy p2;
  s.strategy = "best_of_n";
  auto scorer = std::make_shared<TableScorer>(std::map<std::string, double>{{"A3", 7}});
  auto b = make_strategy(s, scorer)->run(p2);
  CHECK(p2.calls.size() == 1);
  CHECK(p2.calls[0].second == 4);
  CHECK_THAT(b.text, Contains("A3"));

  FakePolicy p3;
  s.strategy = "greedy";
  auto g = make_strategy(s, nullptr)->run(p3);
  CHECK(p3.calls.size() == 1);
  CHECK_THAT(g.text, Contains("A1"));
  s.strategy = "beam";
  CHECK_THROWS_AS(make_strategy(s, scorer), ConfigError);
}

TEST_CASE("EnginePolicy frees an expansion's cache once every node of it is released", "[decode]") {
  auto t = tiny_engine();
  PolicySettings ps;
  ps.sampling.temperature = 1;
  ps.max_new_tokens = 4;
  EnginePolicy pol(*t.engine, {"How many shapes?", "", "", ""}, ps);
  pol.root();
  const auto prompt_bytes = pol.cache_bytes();
  auto kids = pol.expand({0, 0, 0}, "", true);
  CHECK(pol.cache_bytes() > prompt_bytes);
  pol.release({kids[0], kids[1]});
  CHECK(pol.cache_bytes() > prompt_bytes);  // kids[2] still needs the set
  pol.release({kids[2], 0});
  CHECK(pol.cache_bytes() == prompt_bytes);  // the prompt's cache stays
  CHECK_NOTHROW(pol.text(kids[0]));  // a released node's text stays readable
  if (!pol.piece(kids[0]).ended()) CHECK_THROWS_AS(pol.expand({kids[0]}, "", true), UsageError);
  CHECK(pol.expand({0}, "", true).size() == 1);
}

// ---------------------------------------------------------------------------------------------------------
// A search of a few tokens a stage whose SWIRES threshold is never cleared, so every retrace is used.
DecodeConfig short_search(const std::string& strategy, const std::string& scorer, int64_t candidates, int64_t keep) {
  DecodeConfig dc;
  dc.strategy = strategy;
  dc.scorer = scorer;
  dc.max_new_tokens = 6;
  dc.judge_max_new_tokens = 4;
  dc.candidates = candidates;
  dc.keep = keep;
  dc.max_retraces = 1;
  dc.score_mean = 100;
  return dc;
}

TEST_CASE("every strategy runs end to end on the tiny model through EnginePolicy", "[decode]") {
  auto t = tiny_engine();
  auto image = test::fresh_dir("decode_e2e_" + std::to_string(::getpid())) + "/img.png";
  {
    auto demo = test::make_demo(test::fresh_dir("decode_e2e_demo_" + std::to_string(::getpid())), 4);
    for (const auto& e : std::filesystem::recursive_directory_iterator(demo + "/images"))
      if (e.is_regular_file() && e.path().extension() == ".png") {
        std::filesystem::copy_file(e.path(), image);
        break;
      }
    REQUIRE(std::filesystem::exists(image));
  }
  for (const std::string strategy : {"greedy", "sample", "best_of_n", "stage_beam", "swires"}) {
    for (const std::string scorer : {"logprob", "self_verify", "pairwise"}) {
      if (strategy == "swires" && scorer == "pairwise") continue;
      if ((strategy == "greedy" || strategy == "sample") && scorer != "logprob") continue;
      INFO(strategy << " / " << scorer);
      Decoder d(t.engine, short_search(strategy, scorer, 2, 1));
      const auto before = t.engine->counters();
      auto a = d.answer({"How many shapes are there?", "", image, ""});
      CHECK(a.counters.images_encoded == 1);
      CHECK(a.counters.generated_tokens > 0);
      CHECK(a.counters.forward_passes > 0);
      CHECK(t.engine->counters().generated_tokens - before.generated_tokens == a.counters.generated_tokens);
      if (strategy == "swires") {
        CHECK(a.search.retraces == 1);
        CHECK(a.counters.scorer_calls == 2 * (2 + 2) + 2);  // captions + reasonings per round, final answers
      }
      if (scorer == "pairwise" && strategy == "stage_beam") CHECK(a.counters.judge_calls > 0);
    }
  }
}

// The first `count` images (by path) of a fresh 6-record demo in a folder named after `name`.
std::vector<std::string> demo_images(const std::string& name, size_t count) {
  std::vector<std::string> images;
  const auto demo = test::make_demo(test::fresh_dir(name + "_" + std::to_string(::getpid())), 6);
  for (const auto& e : std::filesystem::recursive_directory_iterator(demo + "/images"))
    if (e.is_regular_file() && e.path().extension() == ".png") images.push_back(e.path().string());
  std::sort(images.begin(), images.end());
  REQUIRE(images.size() >= count);
  images.resize(count);
  return images;
}

TEST_CASE("answer_batch: questions decoded together give the answers and counts of answer() one at a time", "[decode]") {
  auto t = tiny_engine();
  const auto images = demo_images("decode_batch_demo", 3);
  // Prompts of different lengths (left padding), three images, a blanked one and a text-only question (its own batch).
  std::vector<Question> qs{{"How many shapes are there?", "", images[0], ""},
                           {"What colour is the largest shape in this picture, and where is it?", "", images[1], ""},
                           {"Is there a red square?", "", images[2], ""},
                           {"Describe it.", "", "", ""},
                           {"How many shapes are there?", "", images[0], ""}};
  qs[4].blank_image = true;
  for (const std::string strategy : {"greedy", "sample"}) {
    INFO(strategy);
    DecodeConfig dc;
    dc.strategy = strategy;
    dc.max_new_tokens = 10;
    dc.temperature = 1.0;
    Decoder d(t.engine, dc);
    REQUIRE(d.batches());
    const auto before = t.engine->counters();
    const auto together = d.answer_batch(qs);
    const auto batch_tokens = t.engine->counters().generated_tokens - before.generated_tokens;
    REQUIRE(together.size() == qs.size());
    int64_t sum = 0;
    for (size_t i = 0; i < qs.size(); ++i) {
      INFO("question " << i);
      const auto alone = d.answer(qs[i]);
      CHECK(together[i].text == alone.text);
      CHECK(together[i].conclusion == alone.conclusion);
      CHECK(together[i].strategy == strategy);
      CHECK(together[i].counters.generated_tokens == alone.counters.generated_tokens);
      CHECK(together[i].counters.prefill_tokens == alone.counters.prefill_tokens);
      CHECK(together[i].counters.forward_passes == alone.counters.forward_passes);
      CHECK(together[i].counters.images_encoded == alone.counters.images_encoded);
      sum += together[i].counters.generated_tokens;
    }
    CHECK(sum == batch_tokens);
  }
  DecodeConfig remote;  // the http scorer keeps one question's image: its searches are answered one at a time
  remote.strategy = "swires";
  remote.scorer = "http";
  remote.scorer_url = "http://127.0.0.1:9/score";
  CHECK_FALSE(Decoder(t.engine, remote).batches());
}

TEST_CASE("answer_batch: searches run together give the answers and counts of answer() one at a time", "[decode]") {
  auto t = tiny_engine();
  const auto images = demo_images("decode_search_batch", 2);
  // Two images, one of them twice, and a text-only question: rows with and without images in one step.
  std::vector<Question> qs{{"How many shapes are there?", "", images[0], ""},
                           {"What colour is the largest shape in this picture, and where is it?", "", images[1], ""},
                           {"Describe it.", "", "", ""},
                           {"Is there a red square?", "", images[0], ""}};
  for (const auto& [strategy, scorer] : std::vector<std::pair<std::string, std::string>>{
           {"swires", "logprob"}, {"swires", "self_verify"}, {"stage_beam", "pairwise"}, {"best_of_n", "logprob"}}) {
    INFO(strategy << " / " << scorer);
    Decoder d(t.engine, short_search(strategy, scorer, 3, 2));
    REQUIRE(d.batches());
    const auto before = t.engine->counters();
    const auto together = d.answer_batch(qs);
    const auto batch_tokens = t.engine->counters().generated_tokens - before.generated_tokens;
    REQUIRE(together.size() == qs.size());
    int64_t sum = 0;
    for (size_t i = 0; i < qs.size(); ++i) {
      INFO("question " << i);
      const auto alone = d.answer(qs[i]);
      CHECK(together[i].text == alone.text);
      CHECK(together[i].strategy == strategy);
      CHECK(together[i].search.retraces == alone.search.retraces);
      CHECK(together[i].search.trace.size() == alone.search.trace.size());
      const auto& c = together[i].counters;
      const auto& a = alone.counters;
      CHECK(c.generated_tokens == a.generated_tokens);
      CHECK(c.prefill_tokens == a.prefill_tokens);
      CHECK(c.forced_tokens == a.forced_tokens);
      CHECK(c.forward_passes == a.forward_passes);
      CHECK(c.images_encoded == a.images_encoded);
      CHECK(c.scorer_calls == a.scorer_calls);
      CHECK(c.judge_calls == a.judge_calls);
      sum += c.generated_tokens;
    }
    CHECK(sum == batch_tokens);  // every generated token is some question's
  }
}

TEST_CASE("http scorer: the protocol against a stub server (success, retries, malformed reply, timeout)", "[decode]") {
  test::StubServer server;
  FakePolicy p;
  auto nodes = p.expand({0, 0}, "</SUMMARY>", true);
  auto caps = p.expand({nodes[0], nodes[1], nodes[0]}, "</CAPTION>", true);
  HttpScorerOptions o;
  o.timeout_s = 2;
  o.retries = 2;
  o.backoff_s = 0.05;
  SECTION("success: the stub scores each candidate by its length") {
    o.url = server.url("/score");
    HttpScorer s(o);
    auto scores = s.score(p, caps, ScoreTarget{Stage::kCaption, false});
    REQUIRE(scores.size() == 3);
    CHECK(scores[0] == Approx(static_cast<double>(target_text(p.text(caps[0]), {Stage::kCaption, false}).size())));
    CHECK(p.counters().scorer_calls == 3);
  }
  SECTION("a 503 then success: retried") {
    o.url = server.url("/flaky");
    HttpScorer s(o);
    CHECK(s.score(p, caps, ScoreTarget{Stage::kCaption, false}).size() == 3);
  }
  SECTION("a malformed reply is a FormatError naming the URL") {
    o.url = server.url("/malformed");
    HttpScorer s(o);
    try {
      s.score(p, caps, ScoreTarget{Stage::kCaption, false});
      FAIL("no error");
    } catch (const FormatError& e) {
      CHECK_THAT(e.what(), Contains("/malformed"));
    }
    o.url = server.url("/wrong-count");
    CHECK_THROWS_AS(HttpScorer(o).score(p, caps, ScoreTarget{Stage::kCaption, false}), FormatError);
    o.url = server.url("/not-found");
    CHECK_THROWS_AS(HttpScorer(o).score(p, caps, ScoreTarget{Stage::kCaption, false}), IoError);
  }
  SECTION("a server that never answers in time: IoError after the retries") {
    o.url = server.url("/slow");
    o.timeout_s = 0.3;
    o.retries = 1;
    const auto start = std::chrono::steady_clock::now();
    try {
      HttpScorer(o).score(p, caps, ScoreTarget{Stage::kCaption, false});
      FAIL("no error");
    } catch (const IoError& e) {
      CHECK_THAT(e.what(), Contains("2 attempt"));
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
  SECTION("request shape") {
    auto body = http_scorer_request({"q?", "h", "", ""}, "", ScoreTarget{Stage::kReasoning, false}, {"a", "b"});
    CHECK_THAT(body, Contains("\"stage\":\"reasoning\""));
    CHECK_THAT(body, Contains("\"candidates\":[\"a\",\"b\"]"));
    CHECK_THAT(body, Contains("\"image\":null"));
    CHECK(parse_http_scorer_reply("{\"scores\": [1, 2.5]}", 2) == std::vector<double>{1, 2.5});
    CHECK_THROWS_AS(parse_http_scorer_reply("{\"scores\": [1, \"x\"]}", 2), FormatError);
    CHECK_THROWS_AS(parse_http_scorer_reply("[]", 0), FormatError);
  }
}

TEST_CASE("questions files are read defensively", "[decode]") {
  auto dir = test::fresh_dir("decode_questions_" + std::to_string(::getpid()));
  std::ofstream(dir + "/img.png") << "x";
  std::ofstream(dir + "/ok.jsonl") << "{\"question\": \"a?\", \"image\": \"img.png\"}\n\n{\"prompt\": \"b?\"}\n";
  auto qs = read_questions(dir + "/ok.jsonl");
  REQUIRE(qs.size() == 2);
  CHECK(qs[0].image_path == dir + "/img.png");
  CHECK(qs[1].image_path.empty());
  std::ofstream(dir + "/bad.jsonl") << "{\"question\": \"a?\"}\n{\"question\": 3}\n";
  try {
    read_questions(dir + "/bad.jsonl");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK_THAT(e.what(), Contains("bad.jsonl:2"));
    CHECK_THAT(e.what(), Contains("question"));
  }
  std::ofstream(dir + "/missing.jsonl") << "{\"question\": \"a?\", \"image\": \"nope.png\"}\n";
  CHECK_THROWS_AS(read_questions(dir + "/missing.jsonl"), IoError);
}
